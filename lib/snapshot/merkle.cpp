// SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP but
// remain its fastest path for many small messages (pages, tree nodes).
#define OPENSSL_SUPPRESS_DEPRECATED
#include "snapshot/merkle.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

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
    // gives exactly RFC 6962's split at the largest power of two. Nodes go
    // through OpenSSL's direct SHA-256 interface: a node is two compression
    // blocks, and EVP's per-call dispatch would cost more than hashing it.
    const uint8_t one = 0x01;
    std::vector<Digest> level(leaves.begin(), leaves.end());
    SHA256_CTX ctx;
    while (level.size() > 1) {
        size_t w = 0;
        for (size_t i = 0; i + 1 < level.size(); i += 2) {
            Digest d{};
            SHA256_Init(&ctx);
            SHA256_Update(&ctx, &one, 1);
            SHA256_Update(&ctx, level[i].data(), 32);
            SHA256_Update(&ctx, level[i + 1].data(), 32);
            SHA256_Final(d.data(), &ctx);
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
