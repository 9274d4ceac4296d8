// Merkle tree over guest pages: RFC 6962 vectors, a recursive reference for
// every count up to 70 (odd counts, 1 page, powers of two and around them),
// a large count, the threaded page hasher against the single-threaded one,
// and the mapping of a file.
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <fstream>
#include <random>

#include "merkle/merkle.hpp"
#include "snapshot/page_hasher.hpp"
#include "temp_dir.hpp"

using namespace vtpm;
using namespace vtpm::snapshot;

namespace {

std::string hex(const Digest& d) { return to_hex(d); }

// MTH straight from RFC 6962 §2.1.
Digest reference(std::span<const Digest> d) {
    if (d.size() == 1) return d[0];
    size_t k = std::bit_floor(d.size() - 1);
    return merkle::node_hash(reference(d.first(k)), reference(d.subspan(k)));
}

Bytes random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    Bytes b(n);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    return b;
}

}  // namespace

TEST_CASE("RFC 6962 vectors: empty tree and the empty leaf") {
    CHECK(hex(merkle::merkle_root({})) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const Digest empty_leaf = merkle::leaf_hash({});
    CHECK(hex(empty_leaf) == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    const Digest one[1] = {empty_leaf};
    CHECK(merkle::merkle_root(one) == empty_leaf);  // one page: the root is its leaf
}

TEST_CASE("every count from 1 to 70 matches the recursive definition") {
    std::vector<Digest> leaves;
    for (uint8_t i = 0; i < 70; ++i) {
        const uint8_t b = i;
        leaves.push_back(merkle::leaf_hash(ByteView(&b, 1)));
        CHECK(merkle::merkle_root(leaves) == reference(leaves));
    }
}

TEST_CASE("a large page count, and one changed page changes the root") {
    std::vector<Digest> leaves(100003);
    for (size_t i = 0; i < leaves.size(); ++i) leaves[i][i % 32] = static_cast<uint8_t>(i);
    const Digest root = merkle::merkle_root(leaves);
    CHECK(root == reference(leaves));
    leaves[77777][5] ^= 1;
    CHECK(merkle::merkle_root(leaves) != root);
    std::vector<Digest> other = leaves;
    other[3][0] ^= 1;
    other[90000][0] ^= 1;
    CHECK(merkle::differing_leaves(leaves, other, 10) == std::vector<uint64_t>{3, 90000});
    CHECK(merkle::differing_leaves(leaves, other, 1) == std::vector<uint64_t>{3});
}

TEST_CASE("threaded page hashing equals one thread, short last page included") {
    const Bytes mem = random_bytes(37 * kPageSize + 100, 7);
    const PageDigests one = hash_pages(mem, 1), many = hash_pages(mem, 4), all = hash_pages(mem);
    REQUIRE(one.leaves.size() == 38);
    CHECK(one.leaves[0] == merkle::leaf_hash(ByteView(mem).first(kPageSize)));
    CHECK(one.leaves[37] == merkle::leaf_hash(ByteView(mem).subspan(37 * kPageSize)));
    CHECK(many.leaves == one.leaves);
    CHECK(all.root == one.root);
    CHECK(one.root == merkle::merkle_root(one.leaves));
    CHECK(hash_pages(ByteView{}, 3).leaves.empty());
}

TEST_CASE("several 1024-page blocks and a tail: the same root however it is split") {
    const Bytes mem = random_bytes((3 * 1024 + 17) * kPageSize, 11);
    const PageDigests one = hash_pages(mem, 1);
    CHECK(one.root == reference(one.leaves));
    for (unsigned t : {2u, 3u, 4u, 8u}) CHECK(hash_pages(mem, t).root == one.root);
}

TEST_CASE("a file is hashed through a read-only mapping") {
    TempDir dir;
    const std::string path = (dir.path / "ram").string();
    const Bytes mem = random_bytes(16 * kPageSize, 9);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(mem.data()),
                                                static_cast<std::streamsize>(mem.size()));
    auto m = MappedFile::open(path);
    REQUIRE(m);
    CHECK(hash_pages(m->bytes()).root == hash_pages(mem).root);
    CHECK_FALSE(MappedFile::open((dir.path / "missing").string()));
}
