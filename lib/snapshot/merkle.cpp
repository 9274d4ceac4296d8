#include "snapshot/merkle.hpp"

#include <openssl/evp.h>

#include <cstring>
#include <memory>

namespace vtpm::snapshot {

Digest sha256_of(std::initializer_list<ByteView> parts) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    Digest d{};
    unsigned int n = 0;
    EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
    for (ByteView p : parts) EVP_DigestUpdate(ctx.get(), p.data(), p.size());
    EVP_DigestFinal_ex(ctx.get(), d.data(), &n);
    return d;
}

Digest leaf_hash(ByteView page) {
    const uint8_t zero = 0x00;
    return sha256_of({ByteView(&zero, 1), page});
}

Digest node_hash(const Digest& left, const Digest& right) {
    const uint8_t one = 0x01;
    return sha256_of({ByteView(&one, 1), left, right});
}

Digest merkle_root(std::span<const Digest> leaves) {
    if (leaves.empty()) return sha256_of({});
    // Bottom-up over levels; an unpaired last node moves up unchanged, which
    // gives exactly RFC 6962's split at the largest power of two.
    // One fetched algorithm and context for all nodes: the tree costs ~3% of
    // hashing the pages (two SHA-256 blocks per node against 65 per page).
    std::unique_ptr<EVP_MD, decltype(&EVP_MD_free)> md(EVP_MD_fetch(nullptr, "SHA256", nullptr), EVP_MD_free);
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    const uint8_t one = 0x01;
    std::vector<Digest> level(leaves.begin(), leaves.end());
    while (level.size() > 1) {
        size_t w = 0;
        for (size_t i = 0; i + 1 < level.size(); i += 2) {
            Digest d{};
            unsigned int n = 0;
            EVP_DigestInit_ex2(ctx.get(), md.get(), nullptr);
            EVP_DigestUpdate(ctx.get(), &one, 1);
            EVP_DigestUpdate(ctx.get(), level[i].data(), 32);
            EVP_DigestUpdate(ctx.get(), level[i + 1].data(), 32);
            EVP_DigestFinal_ex(ctx.get(), d.data(), &n);
            level[w++] = d;
        }
        if (level.size() % 2) level[w++] = level.back();
        level.resize(w);
    }
    return level.front();
}

std::vector<uint64_t> differing_leaves(std::span<const Digest> a, std::span<const Digest> b, size_t limit) {
    std::vector<uint64_t> out;
    const size_t n = std::min(a.size(), b.size());
    for (size_t i = 0; i < n && out.size() < limit; ++i)
        if (a[i] != b[i]) out.push_back(i);
    for (size_t i = n; i < std::max(a.size(), b.size()) && out.size() < limit; ++i) out.push_back(i);
    return out;
}

}  // namespace vtpm::snapshot
