// The page hasher: threaded hashing equals one thread, block splits give one
// root, and a file is hashed through a read-only mapping. Also run under
// ThreadSanitizer (scripts/test.sh): the workers share a block counter.
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
