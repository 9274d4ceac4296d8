// Engine tests against the real libtpms, in-process, with a temporary
// state directory.
#include <catch2/catch.hpp>

#include "temp_dir.hpp"
#include <tss2/tss2_mu.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "engine/engine.hpp"
#include "tpm/commands.hpp"
#include "store/state_store.hpp"

using namespace vtpm;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<engine::Engine> make_engine(const fs::path& dir, bool tpm2 = true,
                                            std::optional<store::Key> key = std::nullopt) {
    engine::EngineConfig cfg;
    cfg.version = tpm2 ? engine::TpmVersion::V2 : engine::TpmVersion::V1_2;
    auto e = engine::Engine::create(cfg, store::make_dir_store(dir, tpm2, 0600, std::move(key)));
    REQUIRE(e.ok());
    return std::move(*e);
}

Bytes get_random(uint16_t n) {
    Bytes c(12);
    size_t off = 0;
    Tss2_MU_UINT16_Marshal(TPM2_ST_NO_SESSIONS, c.data(), c.size(), &off);
    Tss2_MU_UINT32_Marshal(12, c.data(), c.size(), &off);
    Tss2_MU_UINT32_Marshal(TPM2_CC_GetRandom, c.data(), c.size(), &off);
    Tss2_MU_UINT16_Marshal(n, c.data(), c.size(), &off);
    return c;
}

// TPM2_PCR_Extend(pcr, password session, one sha256 digest)
Bytes pcr_extend(uint32_t pcr, uint8_t fill) {
    uint8_t buf[128];
    size_t off = 10;
    Tss2_MU_UINT32_Marshal(pcr, buf, sizeof buf, &off);
    TPMS_AUTH_COMMAND auth{};
    auth.sessionHandle = TPM2_RS_PW;
    uint8_t auth_buf[64];
    size_t alen = 0;
    Tss2_MU_TPMS_AUTH_COMMAND_Marshal(&auth, auth_buf, sizeof auth_buf, &alen);
    Tss2_MU_UINT32_Marshal(static_cast<uint32_t>(alen), buf, sizeof buf, &off);
    std::memcpy(buf + off, auth_buf, alen);
    off += alen;
    TPML_DIGEST_VALUES d{};
    d.count = 1;
    d.digests[0].hashAlg = TPM2_ALG_SHA256;
    std::memset(d.digests[0].digest.sha256, fill, 32);
    Tss2_MU_TPML_DIGEST_VALUES_Marshal(&d, buf, sizeof buf, &off);
    size_t hdr = 0;
    Tss2_MU_UINT16_Marshal(TPM2_ST_SESSIONS, buf, sizeof buf, &hdr);
    Tss2_MU_UINT32_Marshal(static_cast<uint32_t>(off), buf, sizeof buf, &hdr);
    Tss2_MU_UINT32_Marshal(TPM2_CC_PCR_Extend, buf, sizeof buf, &hdr);
    return Bytes(buf, buf + off);
}

// TPM2_PCR_Read of one sha256 PCR; returns the digest.
Bytes pcr_read(engine::Engine& e, uint32_t pcr) {
    uint8_t buf[64];
    size_t off = 10;
    TPML_PCR_SELECTION sel{};
    sel.count = 1;
    sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel.pcrSelections[0].sizeofSelect = 3;
    sel.pcrSelections[0].pcrSelect[pcr / 8] = static_cast<uint8_t>(1u << (pcr % 8));
    Tss2_MU_TPML_PCR_SELECTION_Marshal(&sel, buf, sizeof buf, &off);
    size_t hdr = 0;
    Tss2_MU_UINT16_Marshal(TPM2_ST_NO_SESSIONS, buf, sizeof buf, &hdr);
    Tss2_MU_UINT32_Marshal(static_cast<uint32_t>(off), buf, sizeof buf, &hdr);
    Tss2_MU_UINT32_Marshal(TPM2_CC_PCR_Read, buf, sizeof buf, &hdr);
    Bytes rsp = e.command(ByteView(buf, off));
    REQUIRE(tpm::response_code(rsp) == 0);
    size_t roff = 10;
    UINT32 counter;
    TPML_PCR_SELECTION out_sel;
    TPML_DIGEST vals;
    REQUIRE(Tss2_MU_UINT32_Unmarshal(rsp.data(), rsp.size(), &roff, &counter) == 0);
    REQUIRE(Tss2_MU_TPML_PCR_SELECTION_Unmarshal(rsp.data(), rsp.size(), &roff, &out_sel) == 0);
    REQUIRE(Tss2_MU_TPML_DIGEST_Unmarshal(rsp.data(), rsp.size(), &roff, &vals) == 0);
    REQUIRE(vals.count == 1);
    return Bytes(vals.digests[0].buffer, vals.digests[0].buffer + vals.digests[0].size);
}

}  // namespace

TEST_CASE("engine: not running answers with the version's fatal error") {
    TempDir d;
    auto e = make_engine(d.path);
    const uint8_t probe[] = {0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x01, 0x81};  // TPM2_ReadClock, QEMU's probe
    Bytes rsp = e->command(probe);
    CHECK(rsp == Bytes{0x80, 0x01, 0, 0, 0, 0x0a, 0, 0, 0x01, 0x01});
}

TEST_CASE("engine: TPM 1.2 fatal error has the 1.2 tag") {
    TempDir d;
    auto e = make_engine(d.path, false);
    const uint8_t probe[] = {0x00, 0xc1, 0, 0, 0, 0x0a, 0, 0, 0, 0xf1};
    CHECK(e->command(probe) == Bytes{0x00, 0xc4, 0, 0, 0, 0x0a, 0, 0, 0, 0x09});
}

TEST_CASE("engine: manufacture, run commands, state persists across power cycles") {
    TempDir d;
    Bytes pcr_before;
    {
        auto e = make_engine(d.path);
        REQUIRE(e->init(false).ok());
        CHECK(fs::exists(d.path / "tpm2-00.permall"));
        REQUIRE(e->startup(0).ok());
        Bytes rsp = e->command(get_random(16));
        CHECK(tpm::response_code(rsp) == 0);
        CHECK(rsp.size() == 10 + 2 + 16);
        REQUIRE(tpm::response_code(e->command(pcr_extend(16, 0xab))) == 0);
        pcr_before = pcr_read(*e, 16);
        CHECK(pcr_before != Bytes(32, 0));
        // Volatile state round trip through the blob API.
        auto vol = e->get_state(engine::BlobType::Volatile);
        REQUIRE(vol.ok());
        auto perm = e->get_state(engine::BlobType::Permanent);
        REQUIRE(perm.ok());
        auto save = e->get_state(engine::BlobType::Savestate);
        CHECK(save.code() == rc::kRetry);
        e->stop();
        REQUIRE(e->set_state(engine::BlobType::Permanent, perm->data.view()).ok());
        REQUIRE(e->set_state(engine::BlobType::Volatile, vol->data.view()).ok());
        REQUIRE(e->init(true).ok());
        // Restored volatile state: PCR value survives without a new Startup.
        CHECK(pcr_read(*e, 16) == pcr_before);
    }
    {
        auto e = make_engine(d.path);
        REQUIRE(e->init(false).ok());
        REQUIRE(e->startup(0).ok());  // Startup(CLEAR) resets PCRs but keeps seeds
        CHECK(pcr_read(*e, 16) == Bytes(32, 0));
    }
}

TEST_CASE("engine: set_state rejects garbage and keeps the cache clean") {
    TempDir d;
    auto e = make_engine(d.path);
    REQUIRE(e->init(false).ok());
    e->stop();
    Bytes junk(200, 0x5a);
    auto r = e->set_state(engine::BlobType::Permanent, junk);
    CHECK_FALSE(r.ok());
    // The original permall still initialises.
    REQUIRE(e->init(false).ok());
}

TEST_CASE("engine: a volatile blob after an empty permanent one is refused, not a libtpms crash") {
    // Found by fuzz-data: libtpms 0.9 checks a volatile blob against the
    // cached permanent one and dereferences NULL when that was set empty.
    TempDir d;
    auto e = make_engine(d.path);
    REQUIRE(e->init(false).ok());
    REQUIRE(e->startup(0).ok());
    auto vol = e->get_state(engine::BlobType::Volatile);
    auto perm = e->get_state(engine::BlobType::Permanent);
    REQUIRE(vol.ok());
    REQUIRE(perm.ok());
    e->stop();
    REQUIRE(e->set_state(engine::BlobType::Permanent, {}).ok());
    auto r = e->set_state(engine::BlobType::Volatile, vol->data.view());
    CHECK(r.code() == rc::kFail);
    CHECK(r.error().message.find("permanent") != std::string::npos);
    // With a permanent blob again the volatile one is checked and taken as before.
    REQUIRE(e->set_state(engine::BlobType::Permanent, perm->data.view()).ok());
    CHECK(e->set_state(engine::BlobType::Volatile, vol->data.view()).ok());
    REQUIRE(e->init(false).ok());
}

TEST_CASE("engine: set_state while running is refused") {
    TempDir d;
    auto e = make_engine(d.path);
    REQUIRE(e->init(false).ok());
    CHECK(e->set_state(engine::BlobType::Permanent, Bytes{1, 2, 3}).code() == rc::kInvalidPostInit);
}

TEST_CASE("engine: locality rules") {
    TempDir d;
    engine::EngineConfig cfg;
    cfg.reject_locality_4 = true;
    auto ex = engine::Engine::create(cfg, store::make_dir_store(d.path, true, 0600, std::nullopt));
    REQUIRE(ex.ok());
    auto& e = **ex;
    CHECK(e.set_locality(3).ok());
    CHECK(e.locality() == 3);
    CHECK(e.set_locality(4).code() == rc::kBadLocality);
    CHECK(e.set_locality(5).code() == rc::kBadLocality);
    CHECK(e.locality() == 3);
}

TEST_CASE("engine: TCG send-command prefix is unwrapped and the response framed") {
    TempDir d;
    auto e = make_engine(d.path);
    REQUIRE(e->init(false).ok());
    REQUIRE(e->startup(0).ok());
    Bytes inner = get_random(8);
    Bytes framed{0, 0, 0, 8, 2};
    put_be32(framed, static_cast<uint32_t>(inner.size()));
    framed.insert(framed.end(), inner.begin(), inner.end());
    Bytes rsp = e->command(framed);
    REQUIRE(rsp.size() == 4 + 20 + 4);
    CHECK(load_be32(rsp.data()) == 20);
    CHECK(tpm::response_code(ByteView(rsp).subspan(4)) == 0);
    CHECK(load_be32(rsp.data() + 24) == 0);
    CHECK(e->locality() == 2);
}

TEST_CASE("data framing: a command announcing more than the TPM's buffer is framed as it came") {
    const Bytes cmd = get_random(8);  // 12 bytes
    CHECK_FALSE(tpm::command_frame_size(ByteView(cmd).first(9), true, 4096));   // no header yet
    CHECK_FALSE(tpm::command_frame_size(ByteView(cmd).first(11), true, 4096));  // the rest may come
    CHECK(tpm::command_frame_size(cmd, true, 4096) == 12u);
    // QEMU's CRB device sends min(announced, buffer) bytes: 3968 of an
    // announced 4000 are all that will ever come, and go to libtpms at once.
    Bytes big(3968, 0);
    big[0] = 0x80;
    big[1] = 0x01;
    big[4] = 4000 >> 8;
    big[5] = 4000 & 0xff;
    CHECK(tpm::command_frame_size(big, true, 3968) == 3968u);
    CHECK_FALSE(tpm::command_frame_size(big, true, 4096));
    // The TCG prefix does not count against the buffer.
    Bytes framed{0, 0, 0, 8, 0};
    put_be32(framed, static_cast<uint32_t>(cmd.size()));
    framed.insert(framed.end(), cmd.begin(), cmd.end());
    CHECK(tpm::command_frame_size(framed, true, 12) == framed.size());
    CHECK_FALSE(tpm::command_frame_size(ByteView(framed).first(framed.size() - 1), true, 12));
}

TEST_CASE("engine: buffer size and info") {
    TempDir d;
    auto e = make_engine(d.path);
    auto q = e->buffer_size(0);
    REQUIRE(q.ok());
    CHECK(q->max == 4096);
    CHECK(q->min == 2808);
    auto s = e->buffer_size(3968);
    REQUIRE(s.ok());
    CHECK(s->size == 3968);
    CHECK(e->max_command_size() == 3968);
    REQUIRE(e->init(false).ok());
    CHECK(e->buffer_size(4000).code() == rc::kBadOrdinal);
    auto info = e->info(3);
    REQUIRE(info.ok());
    CHECK(info->find("\"TPMSpecification\"") != std::string::npos);
}

TEST_CASE("engine: auto-shutdown records an orderly shutdown") {
    TempDir d;
    auto e = make_engine(d.path);
    REQUIRE(e->init(false).ok());
    REQUIRE(e->startup(0).ok());
    REQUIRE(tpm::response_code(e->command(get_random(4))) == 0);
    e->stop();
    CHECK_FALSE(e->running());
    CHECK(tpm::response_code(e->command(get_random(4))) != 0);  // stopped at once
    // The shutdown itself runs when next needed (here: asked for).
    REQUIRE(e->flush_deferred().ok());
    CHECK(e->last_command() == tpm::kTpm2CcShutdown);
    // After Shutdown(SU_STATE) a Startup(SU_STATE) resumes.
    REQUIRE(e->init(false).ok());
    REQUIRE(e->startup(1).ok());
    CHECK(tpm::response_code(e->command(get_random(4))) == 0);
}

TEST_CASE("engine: STOP then INIT runs the orderly shutdown at INIT; a SET_STATEBLOB in between replaces it") {
    TempDir d;
    auto e = make_engine(d.path);
    REQUIRE(e->init(false).ok());
    REQUIRE(e->startup(0).ok());
    REQUIRE(tpm::response_code(e->command(get_random(4))) == 0);
    e->stop();
    REQUIRE(e->init(false).ok());
    CHECK(tpm::response_code(e->command(tpm::startup(1))) == 0);  // SU_STATE: the shutdown was recorded

    // A restore: the permanent state taken while running, STOP, SET, INIT.
    auto perm = e->get_state(engine::BlobType::Permanent);
    REQUIRE(perm.ok());
    e->stop();
    REQUIRE(e->set_state(engine::BlobType::Permanent, perm->data.view()).ok());
    REQUIRE(e->init(false).ok());
    // The set state (taken before any shutdown) is what runs: no orderly
    // shutdown recorded in it, so Startup(SU_STATE) is refused.
    CHECK(tpm::response_code(e->command(tpm::startup(1))) != 0);
    CHECK(tpm::response_code(e->command(tpm::startup(0))) == 0);
}

TEST_CASE("engine: encrypted state at rest opens only with the key") {
    TempDir d;
    store::Key key{SecureBytes(ByteView(Bytes(32, 0x42)))};
    {
        auto e = make_engine(d.path, true, key);
        REQUIRE(e->init(false).ok());
    }
    {
        auto e = make_engine(d.path, true, std::nullopt);
        CHECK_FALSE(e->init(false).ok());  // no key: encrypted permall cannot load
    }
    {
        auto e = make_engine(d.path, true, key);
        CHECK(e->init(false).ok());
    }
}

TEST_CASE("engine: clear_at_power_off leaves no vPCRs to resume from the disk") {
    TempDir d;
    engine::EngineConfig c;
    c.clear_at_power_off = true;
    {
        auto e = engine::Engine::create(c, store::make_dir_store(d.path, true, 0600, std::nullopt));
        REQUIRE(e);
        REQUIRE((*e)->init(false).ok());
        REQUIRE((*e)->startup(0).ok());
        // The guest's own TPM2_Shutdown(SU_STATE) (an S3 suspend), then the
        // power-off: SU_CLEAR is recorded over it.
        REQUIRE(tpm::response_code((*e)->command(tpm::shutdown(1))) == 0);
        (*e)->stop();
    }
    auto e = engine::Engine::create(c, store::make_dir_store(d.path, true, 0600, std::nullopt));
    REQUIRE(e);
    REQUIRE((*e)->init(false).ok());
    CHECK(tpm::response_code((*e)->command(tpm::startup(1))) != 0);
    CHECK(tpm::response_code((*e)->command(tpm::startup(0))) == 0);
    // A reset by CMD_INIT keeps the swtpm >= 0.8 behaviour: SU_STATE.
    REQUIRE((*e)->init(false).ok());
    CHECK(tpm::response_code((*e)->command(tpm::startup(1))) == 0);
}
