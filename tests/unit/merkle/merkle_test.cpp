// Merkle inclusion proofs (RFC 6962 §2.1.1 paths, RFC 9162 §2.1.3.2 checks):
// proofs against a recursive PATH written straight from the RFC for every
// tree size up to 70 and every leaf, the published 8-leaf test tree, and a
// verifier that refuses any corrupted, misplaced, truncated or extended
// proof. Sizes up to 70 cover 1, powers of two and both sides of them, and
// right edges that move up several levels unpaired.
#include <catch2/catch.hpp>

#include <bit>
#include <cstdint>
#include <string>
#include <vector>

#include "merkle/merkle.hpp"

using namespace vtpm;
using namespace vtpm::merkle;

namespace {

// MTH straight from RFC 6962 §2.1.
Digest ref_root(std::span<const Digest> d) {
    if (d.size() == 1) return d[0];
    const size_t k = std::bit_floor(d.size() - 1);
    return node_hash(ref_root(d.first(k)), ref_root(d.subspan(k)));
}

// PATH(m, D[n]) straight from RFC 6962 §2.1.1.
std::vector<Digest> ref_path(uint64_t m, std::span<const Digest> d) {
    if (d.size() == 1) return {};
    const size_t k = std::bit_floor(d.size() - 1);
    std::vector<Digest> path = m < k ? ref_path(m, d.first(k)) : ref_path(m - k, d.subspan(k));
    path.push_back(m < k ? ref_root(d.subspan(k)) : ref_root(d.first(k)));
    return path;
}

// The shape of leaf m's path in a tree of n leaves, by the same recursion on sizes alone (no hashing).
std::vector<bool> ref_shape(uint64_t m, uint64_t n) {
    if (n == 1) return {};
    const uint64_t k = std::bit_floor(n - 1);
    std::vector<bool> shape = m < k ? ref_shape(m, k) : ref_shape(m - k, n - k);
    shape.push_back(m >= k);
    return shape;
}

// Distinct leaves for a tree of n.
std::vector<Digest> make_leaves(size_t n) {
    std::vector<Digest> leaves;
    leaves.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        Bytes page;
        put_be64(page, i);
        leaves.push_back(leaf_hash(page));
    }
    return leaves;
}

std::vector<Digest> proof_of(std::span<const Digest> leaves, uint64_t index) {
    auto p = inclusion_proof(leaves, index);
    REQUIRE(p.ok());
    return std::move(p).value();
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

constexpr size_t kMaxSize = 70;

}  // namespace

TEST_CASE("the RFC 6962 8-leaf test tree: roots of its prefixes, and every proof verifies against them") {
    const std::vector<std::string> inputs = {
        "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"};
    const std::vector<std::string> roots = {
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    };
    std::vector<Digest> leaves;
    for (const auto& in : inputs) leaves.push_back(leaf_hash(*from_hex(in)));
    for (size_t n = 1; n <= leaves.size(); ++n) {
        const std::span<const Digest> tree(leaves.data(), n);
        const auto root = from_hex(roots[n - 1]);
        REQUIRE(root);
        Digest r{};
        std::copy(root->begin(), root->end(), r.begin());
        CHECK(merkle_root(tree) == r);
        for (uint64_t i = 0; i < n; ++i) {
            INFO("size " << n << ", leaf " << i);
            CHECK(verify_inclusion(leaves[i], i, n, proof_of(tree, i), r).ok());
        }
    }
}

TEST_CASE("every size 1..70 and every leaf: the proof is RFC 6962's PATH and verifies") {
    const std::vector<Digest> all = make_leaves(kMaxSize);
    for (size_t n = 1; n <= kMaxSize; ++n) {
        const std::span<const Digest> leaves(all.data(), n);
        const Digest root = merkle_root(leaves);
        REQUIRE(root == ref_root(leaves));
        for (uint64_t i = 0; i < n; ++i) {
            INFO("size " << n << ", leaf " << i);
            const std::vector<Digest> proof = proof_of(leaves, i);
            CHECK(proof == ref_path(i, leaves));
            CHECK(proof.size() == ref_shape(i, n).size());
            const Result<void> r = verify_inclusion(leaves[i], i, n, proof, root);
            CHECK(r.ok());
            if (!r.ok()) FAIL_CHECK(r.error().message);
        }
    }
    // One leaf: the path is empty and the root is the leaf.
    CHECK(proof_of(std::span<const Digest>(all.data(), 1), 0).empty());
    CHECK(verify_inclusion(all[0], 0, 1, {}, all[0]).ok());
}

TEST_CASE("every single-byte corruption of a proof hash, of the leaf or of the root is refused") {
    const std::vector<Digest> all = make_leaves(kMaxSize);
    size_t refused = 0;
    for (size_t n = 1; n <= kMaxSize; ++n) {
        const std::span<const Digest> leaves(all.data(), n);
        const Digest root = merkle_root(leaves);
        for (uint64_t i = 0; i < n; ++i) {
            std::vector<Digest> proof = proof_of(leaves, i);
            // One change per byte position, with the flipped bit varying so that every bit position
            // is hit somewhere.
            for (size_t e = 0; e < proof.size(); ++e) {
                for (size_t b = 0; b < 32; ++b) {
                    const auto flip = static_cast<uint8_t>(1u << ((b + e) % 8));
                    proof[e][b] ^= flip;
                    const Result<void> r = verify_inclusion(leaves[i], i, n, proof, root);
                    proof[e][b] ^= flip;
                    if (r.ok())
                        FAIL_CHECK("size " << n << ", leaf " << i << ": accepted hash " << e << " byte " << b);
                    else if (r.code() != rc::kFail || !contains(r.error().message, "root"))
                        FAIL_CHECK("size " << n << ", leaf " << i << ": " << r.code() << " " << r.error().message);
                    else
                        ++refused;
                }
            }
            for (size_t b = 0; b < 32; ++b) {
                Digest leaf = leaves[i];
                leaf[b] ^= 0x80;
                Digest bad_root = root;
                bad_root[b] ^= 0x01;
                if (verify_inclusion(leaf, i, n, proof, root).ok())
                    FAIL_CHECK("size " << n << ", leaf " << i << ": accepted a changed leaf");
                if (verify_inclusion(leaves[i], i, n, proof, bad_root).ok())
                    FAIL_CHECK("size " << n << ", leaf " << i << ": accepted a changed root");
            }
        }
    }
    CHECK(refused > 100000);  // the loops above really ran
}

TEST_CASE("a proof for another leaf, or another leaf for a proof, is refused") {
    const std::vector<Digest> all = make_leaves(kMaxSize);
    for (size_t n = 2; n <= kMaxSize; ++n) {
        const std::span<const Digest> leaves(all.data(), n);
        const Digest root = merkle_root(leaves);
        for (uint64_t i = 0; i < n; ++i) {
            const std::vector<Digest> proof = proof_of(leaves, i);
            for (uint64_t j = 0; j < n; ++j) {
                if (j == i) continue;
                // Leaf i claimed at position j, and leaf j with i's proof at either position.
                if (verify_inclusion(leaves[i], j, n, proof, root).ok())
                    FAIL_CHECK("size " << n << ": leaf " << i << " accepted at index " << j);
                if (verify_inclusion(leaves[j], j, n, proof, root).ok())
                    FAIL_CHECK("size " << n << ": leaf " << j << " accepted with the proof of " << i);
                if (verify_inclusion(leaves[j], i, n, proof, root).ok())
                    FAIL_CHECK("size " << n << ": leaf " << j << " accepted at index " << i);
            }
        }
    }
    // The message for a leaf that is not the proof's says the root does not match.
    const std::vector<Digest> leaves = make_leaves(5);
    const Result<void> r = verify_inclusion(leaves[1], 2, 5, proof_of(leaves, 2), merkle_root(leaves));
    REQUIRE_FALSE(r.ok());
    CHECK(r.code() == rc::kFail);
    CHECK(contains(r.error().message, "leads to root"));
}

TEST_CASE("a proof with a hash dropped or appended is refused") {
    const std::vector<Digest> all = make_leaves(kMaxSize);
    for (size_t n = 1; n <= kMaxSize; ++n) {
        const std::span<const Digest> leaves(all.data(), n);
        const Digest root = merkle_root(leaves);
        for (uint64_t i = 0; i < n; ++i) {
            INFO("size " << n << ", leaf " << i);
            const std::vector<Digest> proof = proof_of(leaves, i);
            for (size_t e = 0; e < proof.size(); ++e) {
                std::vector<Digest> shorter = proof;
                shorter.erase(shorter.begin() + static_cast<ptrdiff_t>(e));
                const Result<void> r = verify_inclusion(leaves[i], i, n, shorter, root);
                CHECK_FALSE(r.ok());
                CHECK(r.code() == rc::kFail);
                CHECK(contains(r.error().message, "too short"));
            }
            // Appended: a fresh hash, the root itself, a repeat of the last hash; and prepended.
            std::vector<Digest> extras = {all[(i + 1) % all.size()], root, leaves[i]};
            if (!proof.empty()) extras.push_back(proof.back());
            for (const Digest& x : extras) {
                std::vector<Digest> longer = proof;
                longer.push_back(x);
                const Result<void> r = verify_inclusion(leaves[i], i, n, longer, root);
                CHECK_FALSE(r.ok());
                CHECK(r.code() == rc::kFail);
                CHECK(contains(r.error().message, "too long"));
                longer = proof;
                longer.insert(longer.begin(), x);
                CHECK_FALSE(verify_inclusion(leaves[i], i, n, longer, root).ok());
            }
        }
    }
}

TEST_CASE("a wrong tree size is refused unless it gives the path the same shape") {
    // The root does not commit to the tree size: leaf i's path in a tree of m leaves can have exactly the
    // shape of its path in a tree of n (leaf 0 of 3 and of 4: right sibling, then right sibling), and then
    // the same hashes lead to the same root. So the verifier must refuse exactly when the shapes differ,
    // which the recursive reference decides independently of the fn/sn walk.
    const std::vector<Digest> all = make_leaves(kMaxSize);
    size_t same_shape = 0;
    for (size_t n = 1; n <= kMaxSize; ++n) {
        const std::span<const Digest> leaves(all.data(), n);
        const Digest root = merkle_root(leaves);
        for (uint64_t i = 0; i < n; ++i) {
            const std::vector<Digest> proof = proof_of(leaves, i);
            const std::vector<bool> shape = ref_shape(i, n);
            for (uint64_t m = 1; m <= kMaxSize + 10; ++m) {
                if (m == n) continue;
                const bool same = i < m && ref_shape(i, m) == shape;
                same_shape += same;
                if (verify_inclusion(leaves[i], i, m, proof, root).ok() != same)
                    FAIL_CHECK("size " << n << ", leaf " << i << ", claimed size " << m << ": same shape " << same);
            }
            CHECK_FALSE(verify_inclusion(leaves[i], i, 0, proof, root).ok());
            CHECK_FALSE(verify_inclusion(leaves[i], i, UINT64_MAX, proof, root).ok());
        }
    }
    CHECK(same_shape > 0);  // the ambiguity is real, so callers must authenticate the size with the root
    const std::vector<Digest> leaves = make_leaves(4);
    CHECK(verify_inclusion(leaves[0], 0, 3, proof_of(leaves, 0), merkle_root(leaves)).ok());
    const Result<void> r = verify_inclusion(leaves[0], 0, 5, proof_of(leaves, 0), merkle_root(leaves));
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.error().message, "too short"));
}

TEST_CASE("an index at or beyond the tree size is refused by both functions") {
    const std::vector<Digest> all = make_leaves(kMaxSize);
    for (size_t n = 1; n <= kMaxSize; ++n) {
        const std::span<const Digest> leaves(all.data(), n);
        const Digest root = merkle_root(leaves);
        for (uint64_t i : {uint64_t{n}, uint64_t{n} + 1, uint64_t{1} << 40, UINT64_MAX}) {
            INFO("size " << n << ", index " << i);
            const auto p = inclusion_proof(leaves, i);
            REQUIRE_FALSE(p.ok());
            CHECK(p.code() == rc::kBadParameter);
            CHECK(contains(p.error().message, "beyond"));
            // Even with a proof that would be valid for the last leaf.
            const Result<void> r = verify_inclusion(leaves[n - 1], i, n, proof_of(leaves, n - 1), root);
            REQUIRE_FALSE(r.ok());
            CHECK(r.code() == rc::kFail);
            CHECK(contains(r.error().message, "beyond"));
        }
    }
    const auto none = inclusion_proof({}, 0);
    CHECK(none.code() == rc::kBadParameter);
    CHECK(verify_inclusion(all[0], 0, 0, {}, merkle_root({})).code() == rc::kFail);
}

TEST_CASE("a large tree (100003 leaves): proofs at the edges and around 2^16 and 2^17") {
    const std::vector<Digest> leaves = make_leaves(100003);
    const Digest root = merkle_root(leaves);
    for (uint64_t i : {0, 1, 2, 65535, 65536, 65537, 77777, 99999, 100000, 100001, 100002}) {
        INFO("leaf " << i);
        const std::vector<Digest> proof = proof_of(leaves, i);
        CHECK(proof == ref_path(i, leaves));
        CHECK(verify_inclusion(leaves[i], i, leaves.size(), proof, root).ok());
        CHECK_FALSE(verify_inclusion(leaves[i], i ^ 1, leaves.size(), proof, root).ok());
        std::vector<Digest> bad = proof;
        bad[bad.size() / 2][7] ^= 0x10;
        CHECK_FALSE(verify_inclusion(leaves[i], i, leaves.size(), bad, root).ok());
    }
    // The last leaf sits on the right edge: its path skips the levels where its ancestor is unpaired, so it
    // is shorter than a leaf's in the full left part.
    CHECK(proof_of(leaves, 100002).size() < proof_of(leaves, 0).size());
}
