// The CUSE front end through the core (this machine has no /dev/cuse):
// swtpm 0.7.1's ioctl numbers and struct sizes (from its tpm_ioctl.h,
// compiled on x86_64), host-endian structs translated to the control
// channel and back, state blobs in 3072-byte chunks both ways and by
// read()/write(), the data channel — on real libtpms.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>

#include "../temp_dir.hpp"
#include "bridge/cuse/device.hpp"
#include "ctrl/ptm_ioctl.hpp"
#include "engine/engine.hpp"
#include "store/state_store.hpp"

using namespace vtpm;
using namespace vtpm::bridge;
using ctrl::Cmd;

namespace {

uint32_t u32(const Bytes& b, size_t off = 0) {
    uint32_t v = 0;
    std::memcpy(&v, b.data() + off, 4);
    return v;
}

Bytes words(std::initializer_list<uint32_t> w, size_t size) {
    Bytes b(size, 0);
    size_t off = 0;
    for (uint32_t v : w) std::memcpy(b.data() + off, &v, 4), off += 4;
    return b;
}

struct Rig {
    TempDir dir;
    std::unique_ptr<engine::Engine> engine;
    std::unique_ptr<core::Dispatcher> dispatcher;
    std::unique_ptr<CuseDevice> dev;
    Rig() {
        auto e = engine::Engine::create({}, store::make_dir_store(dir.path, true, 0600, std::nullopt));
        REQUIRE(e);
        engine = std::move(*e);
        dispatcher = std::make_unique<core::Dispatcher>(*engine, core::DispatcherConfig{});
        dev = std::make_unique<CuseDevice>(*dispatcher);
    }
    CuseDevice::IoctlReply io(Cmd c, Bytes in = {}) { return dev->ioctl(ctrl::ptm_request(c), in); }
};

}  // namespace

TEST_CASE("cuse: swtpm 0.7.1's ioctl numbers and sizes") {
    const std::pair<Cmd, uint32_t> want[] = {
        {Cmd::GetCapability, 0x80085000}, {Cmd::Init, 0xC0045001},          {Cmd::Shutdown, 0x80045002},
        {Cmd::GetTpmEstablished, 0x80085003}, {Cmd::SetLocality, 0xC0045004}, {Cmd::HashStart, 0x80045005},
        {Cmd::HashData, 0xD0045006},      {Cmd::HashEnd, 0x80045007},       {Cmd::CancelTpmCmd, 0x80045008},
        {Cmd::StoreVolatile, 0x80045009}, {Cmd::ResetTpmEstablished, 0xC004500A}, {Cmd::GetStateBlob, 0xCC10500B},
        {Cmd::SetStateBlob, 0xCC0C500C},  {Cmd::Stop, 0x8004500D},          {Cmd::GetConfig, 0x8008500E},
        {Cmd::SetDataFd, 0x8004500F},     {Cmd::SetBufferSize, 0xC0105010}, {Cmd::GetInfo, 0xCC105011}};
    for (auto [cmd, req] : want) {
        INFO(std::hex << req);
        CHECK(ctrl::ptm_request(cmd) == req);
        auto io = ctrl::ptm_ioctl(req);
        REQUIRE(io);
        CHECK(io->size == ((req >> 16) & 0x3fff));
    }
    CHECK_FALSE(ctrl::ptm_ioctl(0x80085099));
}

TEST_CASE("cuse: control and data through the core, as swtpm cuse answers") {
    Rig r;
    auto cap = r.io(Cmd::GetCapability);
    REQUIRE(cap.out.size() == 8);
    uint64_t caps = 0;
    std::memcpy(&caps, cap.out.data(), 8);
    CHECK(caps == 0x6fff);
    // Before CMD_INIT: what needs a running TPM is refused as by swtpm.
    CHECK(u32(r.io(Cmd::GetTpmEstablished).out) == rc::kBadOrdinal);
    auto init = r.io(Cmd::Init, words({0}, 4));
    REQUIRE(init.out.size() == 4);
    CHECK(u32(init.out) == 0);
    // The data channel: one command per write, its response read back.
    const Bytes startup = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 0};
    CHECK(r.dev->write(startup) == 12);
    CHECK(r.dev->read(4096) == Bytes{0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0, 0});
    CHECK(r.dev->read(4096).empty());
    auto est = r.io(Cmd::GetTpmEstablished);
    CHECK(est.out.size() == 8);
    CHECK(u32(est.out) == 0);
    CHECK(u32(r.io(Cmd::SetLocality, words({5}, 4)).out) == 0x3d);
    CHECK(u32(r.io(Cmd::SetLocality, words({0}, 4)).out) == 0);
    Bytes big = words({5000}, 4100);
    CHECK(u32(r.io(Cmd::HashData, big).out) == rc::kFail);
    auto cfg = r.io(Cmd::GetConfig);
    CHECK(cfg.out.size() == 8);
    auto info = r.io(Cmd::GetInfo, words({3, 0, 0, 0}, 3088));
    REQUIRE(info.out.size() == 3088);
    CHECK(u32(info.out) == 0);
    CHECK(std::string(reinterpret_cast<const char*>(info.out.data() + 12)).find("TPMSpecification") !=
          std::string::npos);
    CHECK(r.dev->ioctl(0x12345678, {}).err == EINVAL);
    CHECK(r.io(Cmd::SetDataFd).err == EINVAL);
    CHECK(r.io(Cmd::Shutdown).shutdown);
}

TEST_CASE("cuse: state blobs in chunks both ways, and by read()/write()") {
    Rig r;
    REQUIRE(u32(r.io(Cmd::Init, words({0}, 4)).out) == 0);
    REQUIRE(r.dev->write(Bytes{0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 0}) == 12);
    REQUIRE(r.dev->read(4096).size() == 10);
    // GET_STATEBLOB volatile (several KiB once the TPM ran), decrypted: the
    // ioctl at offset 0 fetches the blob, the rest comes by read() ...
    auto g = r.io(Cmd::GetStateBlob, words({1, 2, 0}, 3088));
    REQUIRE(g.out.size() == 3088);
    REQUIRE(u32(g.out) == 0);
    const uint32_t total = u32(g.out, 8);
    CHECK(total > 3072);  // more than one ioctl's worth
    REQUIRE(u32(g.out, 12) == 3072);
    Bytes by_read(g.out.begin() + 16, g.out.begin() + 16 + 3072);
    for (Bytes chunk; !(chunk = r.dev->read(1000)).empty();) by_read.insert(by_read.end(), chunk.begin(), chunk.end());
    CHECK(by_read.size() == total);
    // ... or by ioctls at increasing offsets (swtpm_ioctl --save), from the
    // same blob: later offsets read the one fetched at offset 0.
    Bytes by_offset(g.out.begin() + 16, g.out.begin() + 16 + 3072);
    for (int i = 0; i < 64 && by_offset.size() < total; ++i) {
        auto c = r.io(Cmd::GetStateBlob, words({1, 2, static_cast<uint32_t>(by_offset.size())}, 3088));
        REQUIRE(u32(c.out) == 0);
        CHECK(u32(c.out, 8) == total);
        const uint32_t len = u32(c.out, 12);
        REQUIRE(len <= 3072);
        by_offset.insert(by_offset.end(), c.out.begin() + 16, c.out.begin() + 16 + len);
    }
    CHECK(by_offset == by_read);

    // SET_STATEBLOB in 3072-byte ioctls, the last shorter (swtpm_ioctl --load).
    REQUIRE(u32(r.io(Cmd::Stop).out) == 0);
    for (size_t off = 0;; off += 3072) {
        const size_t n = std::min<size_t>(3072, by_offset.size() - off);
        Bytes in = words({1, 2, static_cast<uint32_t>(n)}, 3084);
        std::memcpy(in.data() + 12, by_offset.data() + off, n);
        auto s = r.io(Cmd::SetStateBlob, in);
        REQUIRE(s.out.size() == 3084);
        REQUIRE(u32(s.out) == 0);
        if (n < 3072) break;
    }
    CHECK(u32(r.io(Cmd::Init, words({0}, 4)).out) == 0);
    // Resumed from the volatile state of a started TPM: it is started
    // (TPM2_Startup answers TPM_RC_INITIALIZE) and answers commands.
    CHECK(r.dev->write(Bytes{0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x44, 0, 0}) == 12);
    CHECK(r.dev->read(4096) == Bytes{0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x01, 0x00});
    CHECK(r.dev->write(Bytes{0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0, 8}) == 12);
    CHECK(r.dev->read(4096).size() == 20);

    // By write(): an ioctl of length 0 starts, write()s carry the blob, a
    // final ioctl of length 0 commits. A damaged blob is refused there.
    REQUIRE(u32(r.io(Cmd::Stop).out) == 0);
    CHECK(u32(r.io(Cmd::SetStateBlob, words({1, 2, 0}, 3084)).out) == 0);
    Bytes damaged = by_offset;
    damaged.resize(damaged.size() - 100);
    CHECK(r.dev->write(damaged) == static_cast<long>(damaged.size()));
    CHECK(u32(r.io(Cmd::SetStateBlob, words({1, 2, 0}, 3084)).out) != 0);
    CHECK(u32(r.io(Cmd::SetStateBlob, words({1, 2, 0}, 3084)).out) == 0);
    CHECK(r.dev->write(by_offset) == static_cast<long>(by_offset.size()));
    CHECK(u32(r.io(Cmd::SetStateBlob, words({1, 2, 0}, 3084)).out) == 0);
    CHECK(u32(r.io(Cmd::Init, words({0}, 4)).out) == 0);
    CHECK(u32(r.io(Cmd::SetStateBlob, words({1, 1, 4000}, 3084)).out) == rc::kBadParameter);
}
