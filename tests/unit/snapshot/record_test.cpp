// Snapshot record codec: round trip, every truncation, each field's check,
// and what the signature and the quote's qualifying data bind. Also the
// /proc/PID/maps parser that finds QEMU's guest RAM, and finding a shared
// memfd mapped in this very process.
#include <catch2/catch.hpp>
#include <sys/mman.h>
#include <unistd.h>

#include "snapshot/guest_memory.hpp"
#include "snapshot/record.hpp"
#include "util/fd.hpp"

using namespace vtpm;
using namespace vtpm::snapshot;

namespace {

SnapshotRecord sample() {
    SnapshotRecord r;
    r.vm_uuid = *parse_uuid("3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6");
    r.generation = 7;
    r.created = 1764600000;
    r.page_count = 2049;
    r.root[0] = 0xaa;
    r.block_pages = 1024;
    r.block_roots.resize(3);
    r.block_roots[2][31] = 3;
    r.permanent_digest[1] = 1;
    r.volatile_digest[2] = 2;
    r.banks.push_back({0x000B, std::vector<Bytes>(24, Bytes(32, 0x11))});
    r.banks.push_back({0x0004, std::vector<Bytes>(24, Bytes(20, 0x22))});
    r.host_key_name = Bytes(34, 0x33);
    r.vaik_public = Bytes(90, 0x44);
    r.quote_attest = Bytes(120, 0x55);
    r.quote_signature = Bytes(72, 0x66);
    r.host_signature = Bytes(72, 0x77);
    return r;
}

std::string error_of(const Bytes& b) {
    auto r = parse_record(b);
    return r ? "" : r.error().message;
}

}  // namespace

TEST_CASE("record: round trip") {
    const SnapshotRecord r = sample();
    const Bytes enc = encode_record(r);
    auto back = parse_record(enc);
    REQUIRE(back);
    CHECK(encode_record(*back) == enc);
    CHECK(back->generation == 7);
    CHECK(back->banks.size() == 2);
    CHECK(back->banks[1].values[23] == Bytes(20, 0x22));
    CHECK(format_uuid(back->vm_uuid) == "3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6");
}

TEST_CASE("record: every truncation and any trailing byte is refused") {
    const Bytes enc = encode_record(sample());
    for (size_t n = 0; n < enc.size(); ++n) CHECK_FALSE(parse_record(ByteView(enc).first(n)));
    Bytes longer = enc;
    longer.push_back(0);
    CHECK(error_of(longer).find("after the end") != std::string::npos);
}

TEST_CASE("record: each field is checked and named") {
    auto with = [](auto edit) {
        SnapshotRecord r = sample();
        edit(r);
        return error_of(encode_record(r));
    };
    Bytes enc = encode_record(sample());
    enc[0] = 'X';
    CHECK(error_of(enc).find("bad magic") != std::string::npos);
    enc = encode_record(sample());
    enc[9] = 2;
    CHECK(error_of(enc).find("version 2") != std::string::npos);
    CHECK(with([](SnapshotRecord& r) { r.block_roots.pop_back(); }).find("expected 3") != std::string::npos);
    CHECK(with([](SnapshotRecord& r) { r.banks[0].hash_alg = 0x1234; }).find("unknown PCR bank") != std::string::npos);
    CHECK(with([](SnapshotRecord& r) { r.banks[1] = r.banks[0]; }).find("twice") != std::string::npos);
    CHECK(with([](SnapshotRecord& r) { r.banks.clear(); }).find("0 PCR banks") != std::string::npos);
    CHECK(with([](SnapshotRecord& r) { r.banks[0].values.clear(); }).find("0 PCRs") != std::string::npos);
    CHECK(with([](SnapshotRecord& r) { r.quote_attest.clear(); }).find("vAIK quote needs") != std::string::npos);
    CHECK(with([](SnapshotRecord& r) { r.page_size = 8192; }).find("page size") != std::string::npos);
    CHECK(with([](SnapshotRecord& r) { r.source = static_cast<DigestSource>(9); }).find("digest source") !=
          std::string::npos);
    CHECK(with([](SnapshotRecord& r) { r.page_count = uint64_t{1} << 41; r.block_roots.clear(); })
              .find("out of range") != std::string::npos);
    // No block roots at all is allowed (QEMU's digest has none).
    CHECK(with([](SnapshotRecord& r) { r.block_roots.clear(); r.block_pages = 0; }).empty());
}

TEST_CASE("record: the signature covers every field, the quote binds image and save") {
    const SnapshotRecord base = sample();
    const Bytes msg = signed_message(base);
    CHECK(std::string(msg.begin(), msg.begin() + 26) == "libvtpm snapshot record v1");
    for (int field = 0; field < 6; ++field) {
        SnapshotRecord r = base;
        switch (field) {
            case 0: r.generation++; break;
            case 1: r.root[5] ^= 1; break;
            case 2: r.banks[0].values[9][0] ^= 1; break;
            case 3: r.vm_uuid[0] ^= 1; break;
            case 4: r.volatile_digest[0] ^= 1; break;
            case 5: r.quote_attest[0] ^= 1; break;
        }
        CHECK(signed_message(r) != msg);
    }
    SnapshotRecord r = base;
    r.host_signature.clear();  // not part of what it signs
    CHECK(signed_message(r) == msg);
    const Digest q = quote_qualifying_data(base);
    r = base;
    r.generation++;
    CHECK(quote_qualifying_data(r) != q);
    r = base;
    r.root[0] ^= 1;
    CHECK(quote_qualifying_data(r) != q);
    r = base;
    r.banks[0].values[0][0] ^= 1;
    CHECK(quote_qualifying_data(r) == q);  // PCR values are bound by the quote's own pcrDigest
    CHECK(pcr_values_digest(r) != pcr_values_digest(base));
}

TEST_CASE("record: UUIDs") {
    CHECK(format_uuid(*parse_uuid("3F0D9A4E-5B6C-4D7E-8F90-A1B2C3D4E5F6")) == "3f0d9a4e-5b6c-4d7e-8f90-a1b2c3d4e5f6");
    CHECK_FALSE(parse_uuid("3f0d9a4e5b6c4d7e8f90a1b2c3d4e5f6x"));
    CHECK_FALSE(parse_uuid(""));
}

TEST_CASE("maps: QEMU's RAM among its mappings") {
    const std::string maps =
        "55d0c0000000-55d0c0100000 r-xp 00000000 fd:01 1234 /usr/bin/qemu-system-x86_64\n"
        "7f0000000000-7f0008000000 rw-s 00000000 00:01 4242 /memfd:pc.ram (deleted)\n"
        "7f0008000000-7f0010000000 rw-s 08000000 00:01 4242 /memfd:pc.ram (deleted)\n"  // split by madvise
        "7f1000000000-7f1000400000 rw-s 00000000 00:1a 77 /dev/shm/vm.ram\n"
        "7f2000000000-7f2000010000 rw-s 00000000 00:01 99 /memfd:small (deleted)\n"      // too small
        "7f3000000000-7f3001000000 rw-p 00000000 00:00 0 \n"                             // anonymous
        "7f4000000000-7f4001000000 rw-s 00000000 00:05 12 /dev/dri/card0\n"              // a device
        "7f5000000000-7f5001000000 rw-s 00100000 00:01 55 /memfd:other (deleted)\n"      // not from offset 0
        "garbage line\n";
    const auto parsed = parse_maps(maps);
    CHECK(parsed.size() == 8);
    CHECK(parsed[1].shared);
    CHECK(parsed[1].path == "/memfd:pc.ram (deleted)");
    const auto ram = guest_ram_candidates(parsed, 2u << 20);
    REQUIRE(ram.size() == 2);
    CHECK(ram[0].inode == 4242);
    CHECK(ram[0].end - ram[0].start == 0x10000000);  // both pieces, 256 MiB
    CHECK(ram[1].path == "/dev/shm/vm.ram");
}

TEST_CASE("maps: a shared memfd of this process is found, mapped and hashed") {
    const size_t size = 4u << 20;
    UniqueFd fd(memfd_create("guest-ram-test", MFD_CLOEXEC));
    REQUIRE(fd);
    REQUIRE(ftruncate(fd.get(), static_cast<off_t>(size)) == 0);
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    REQUIRE(p != MAP_FAILED);
    auto* b = static_cast<uint8_t*>(p);
    b[5 * 4096 + 7] = 0x5a;
    auto mem = GuestMemory::open_process(getpid(), size);
    INFO((mem ? std::string() : mem.error().message));
    REQUIRE(mem);
    REQUIRE(mem->regions.size() == 1);
    CHECK(mem->page_count() == size / 4096);
    CHECK_FALSE(mem->pages_are_holes(5, 1));  // written
    CHECK(mem->pages_are_holes(600, 1));      // never touched, not even by hashing it
    // Holes are hashed as zero pages without being read: same root, and the
    // memfd still has exactly the one page it had.
    const auto views = mem->views();
    REQUIRE(views[0].data);
    REQUIRE(views[0].data->size() == 1);
    CHECK((*views[0].data)[0].begin == 5 * 4096);
    CHECK((*views[0].data)[0].end == 6 * 4096);
    b[900 * 4096] = 1;  // a second data page
    Bytes copy(size, 0);  // the same content, built without reading the memfd's holes
    copy[5 * 4096 + 7] = 0x5a;
    copy[900 * 4096] = 1;
    CHECK(hash_regions(mem->views()).root == hash_pages(ByteView(copy)).root);
    CHECK(mem->pages_are_holes(600, 1));
    munmap(p, size);
}
