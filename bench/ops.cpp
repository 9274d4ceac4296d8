#include "ops.hpp"

#include <chrono>
#include <thread>
#include <cstdio>

#include "ctrl_cmds.hpp"
#include "net.hpp"
#include "tpm_cmds.hpp"

namespace bench {
namespace {

using Clock = std::chrono::steady_clock;
using vtpm::Result;

double micros(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::micro>(b - a).count();
}

void record(Batch* batch, const std::string& series, double us) {
    if (batch) (*batch)[series].push_back(us);
}

constexpr int kMaxRetries = 5;

// Send a TPM command and read its response. TPM_RC_RETRY ("not able to start
// the command", e.g. libtpms persisting the DA state on the first use of a
// DA-protected key) is answered by sending the command again, as ESYS does;
// the retries are counted and reported.
Result<void> transact_resubmitting(Target& t, const Bytes& cmd) {
    for (int attempt = 0;; ++attempt) {
        if (auto r = tpm_transact(t.data.get(), cmd, t.rsp); !r) return r;
        if (response_code(t.rsp) != TPM2_RC_RETRY || attempt == kMaxRetries) return {};
        ++t.retries;
    }
}

// Send one TPM command on the data channel, timing the round trip (including
// any resubmissions); then check its response code (untimed).
Result<void> timed_tpm(Target& t, const Result<Bytes>& cmd, const char* command, Batch* batch,
                       const std::string& series) {
    if (!cmd) return cmd.error();
    auto t0 = Clock::now();
    auto r = transact_resubmitting(t, *cmd);
    auto t1 = Clock::now();
    if (!r) return r;
    if (auto ok = expect_success(t.rsp, command); !ok) return ok;
    record(batch, series, micros(t0, t1));
    return {};
}

// Untimed TPM command whose response code must be success.
Result<void> untimed_tpm(Target& t, const Result<Bytes>& cmd, const char* command) {
    if (!cmd) return cmd.error();
    if (auto r = transact_resubmitting(t, *cmd); !r) return r;
    return expect_success(t.rsp, command);
}

Result<void> flush_created_handle(Target& t) {
    auto handle = response_handle(t.rsp);
    if (!handle) return handle.error();
    return untimed_tpm(t, cmd_flush_context(*handle), "TPM2_FlushContext");
}

Result<void> create_primary(Target& t, Batch* batch, const std::string& series, bool rsa) {
    ++t.variant;  // a key not derived before, the same one on both servers
    auto cmd = rsa ? cmd_create_primary_rsa(t.variant) : cmd_create_primary_ecc(t.variant);
    if (auto r = timed_tpm(t, cmd, "TPM2_CreatePrimary", batch, series); !r) return r;
    return flush_created_handle(t);
}

// GetRandom(32) must return 32 bytes: used after a restore to show the TPM
// runs with the restored state without a TPM2_Startup.
Result<void> check_get_random(Target& t, const char* when) {
    if (auto r = untimed_tpm(t, cmd_get_random(32), when); !r) return r;
    auto n = random_bytes_returned(t.rsp);
    if (!n) return n.error();
    if (*n != 32)
        return vtpm::make_error(vtpm::rc::kFail,
                                std::string(when) + ": GetRandom returned " + std::to_string(*n) + " bytes");
    return {};
}


}  // namespace

Result<void> expect_success(const Bytes& rsp, const char* command) {
    uint32_t rc = response_code(rsp);
    if (rc == TPM2_RC_SUCCESS) return {};
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s answered TPM rc 0x%03x", command, rc);
    return vtpm::make_error(rc, buf);
}

Result<void> setup_target(Target& t) {
    auto data = t.server->connect_data();
    if (!data) return data.error();
    t.data = std::move(*data);
    auto ctrl = t.server->connect_ctrl();
    if (!ctrl) return ctrl.error();
    t.ctrl = std::move(*ctrl);
    if (auto r = check_get_random(t, "first command"); !r) return r;
    // Defined already when the server is started again on its state.
    auto define = cmd_nv_define(kNvIndex, kNvSize);
    if (!define) return define.error();
    if (auto r = transact_resubmitting(t, *define); !r) return r;
    if (response_code(t.rsp) != TPM2_RC_NV_DEFINED)
        if (auto r = expect_success(t.rsp, "TPM2_NV_DefineSpace"); !r) return r;
    // Variant 0 is never used by the CreatePrimary rows (they start at 1).
    if (auto r = untimed_tpm(t, cmd_create_primary_ecc(0), "TPM2_CreatePrimary (Quote key)"); !r) return r;
    auto handle = response_handle(t.rsp);
    if (!handle) return handle.error();
    t.quote_key = *handle;
    return {};
}

Op get_random_op(const std::string& name, const std::string& series, double target) {
    return {name, {{series, target}}, 100, 1, nullptr,
            [series](Target& t, Batch* b) { return timed_tpm(t, cmd_get_random(32), "TPM2_GetRandom", b, series); }};
}

std::vector<Op> latency_ops() {
    std::vector<Op> ops;

    ops.push_back(get_random_op("GetRandom(32)", "GetRandom(32)", 0.9));
    // The same command with the client idle 300 µs between commands (a
    // guest's TPM driver, not a benchmark loop): every command wakes the
    // server from its sleep, the case busy-polling cannot help.
    ops.push_back({"GetRandom spaced", {{"GetRandom(32), spaced 300 us", 1.0}}, 100, 1, nullptr,
                   [](Target& t, Batch* b) {
                       std::this_thread::sleep_for(std::chrono::microseconds(300));
                       return timed_tpm(t, cmd_get_random(32), "TPM2_GetRandom", b, "GetRandom(32), spaced 300 us");
                   }});
    ops.push_back({"PCR_Extend", {{"PCR_Extend (sha256, PCR 16)", 0.9}}, 100, 1, nullptr, [](Target& t, Batch* b) {
                       return timed_tpm(t, cmd_pcr_extend(kBenchPcr, ++t.fill), "TPM2_PCR_Extend", b,
                                        "PCR_Extend (sha256, PCR 16)");
                   }});
    ops.push_back({"PCR_Read", {{"PCR_Read (sha256, PCR 16)", 1.0}}, 100, 1, nullptr, [](Target& t, Batch* b) {
                       return timed_tpm(t, cmd_pcr_read(kBenchPcr), "TPM2_PCR_Read", b, "PCR_Read (sha256, PCR 16)");
                   }});
    ops.push_back({"NV_Write", {{"NV_Write (32 bytes)", 0.9}}, 5, 4, nullptr, [](Target& t, Batch* b) {
                       return timed_tpm(t, cmd_nv_write(kNvIndex, kNvSize, ++t.fill), "TPM2_NV_Write", b,
                                        "NV_Write (32 bytes)");
                   }});
    ops.push_back({"CreatePrimary ECC", {{"CreatePrimary ECC P-256", 1.0}}, 5, 4, nullptr, [](Target& t, Batch* b) {
                       return create_primary(t, b, "CreatePrimary ECC P-256", false);
                   }});
    ops.push_back({"CreatePrimary RSA", {{"CreatePrimary RSA-2048", 1.0}}, 2, 1, nullptr, [](Target& t, Batch* b) {
                       return create_primary(t, b, "CreatePrimary RSA-2048", true);
                   }});
    ops.push_back({"Quote", {{"Quote (ECDSA P-256, PCR 16)", 1.0}}, 10, 1, nullptr, [](Target& t, Batch* b) {
                       return timed_tpm(t, cmd_quote(t.quote_key, kBenchPcr), "TPM2_Quote", b,
                                        "Quote (ECDSA P-256, PCR 16)");
                   }});
    ops.push_back({"control round trip", {{"ctrl round trip (GET_CONFIG)", 1.0}}, 100, 1, nullptr,
                   [](Target& t, Batch* b) -> Result<void> {
                       static const Bytes req = ctrl_request(ctrl::kGetConfig);
                       auto t0 = Clock::now();
                       auto r = ctrl_call(t.ctrl.get(), req, 8, t.rsp);
                       auto t1 = Clock::now();
                       if (!r) return r;
                       record(b, "ctrl round trip (GET_CONFIG)", micros(t0, t1));
                       return {};
                   }});
    ops.push_back({"GET_STATEBLOB",
                   {{"GET_STATEBLOB permanent", 1.0}, {"GET_STATEBLOB volatile", 1.0}},
                   20,
                   1,
                   nullptr,
                   [](Target& t, Batch* b) -> Result<void> {
                       static const Bytes reqs[2] = {
                           ctrl_request(ctrl::kGetStateBlob, {ctrl::kStateFlagDecrypted, ctrl::kBlobPermanent, 0}),
                           ctrl_request(ctrl::kGetStateBlob, {ctrl::kStateFlagDecrypted, ctrl::kBlobVolatile, 0})};
                       static const char* const series[2] = {"GET_STATEBLOB permanent", "GET_STATEBLOB volatile"};
                       for (int i = 0; i < 2; ++i) {
                           auto t0 = Clock::now();
                           auto r = ctrl_get_stateblob(t.ctrl.get(), reqs[i], t.rsp, t.blob_scratch);
                           auto t1 = Clock::now();
                           if (!r) return r;
                           record(b, series[i], micros(t0, t1));
                       }
                       return {};
                   }});
    // Live migration and restore as QEMU drives them: the source fetches the
    // permanent and volatile blobs; the destination (here the same server)
    // gets STOP, SET_STATEBLOB permanent and volatile, INIT with the
    // delete-volatile flag (what QEMU sends when resuming), then the guest's
    // next command. Each step is a row; the last row is the whole cycle.
    ops.push_back({"migrate cycle",
                   {{"migrate cycle (GETx2 STOP SETx2 INIT cmd)", 1.0},
                    {"CMD_STOP (running TPM)", 1.0},
                    {"SET_STATEBLOB permanent", 1.0},
                    {"SET_STATEBLOB volatile", 1.0},
                    {"CMD_INIT (resume from the set blobs)", 1.0}},
                   5,
                   1,
                   nullptr,
                   [](Target& t, Batch* b) -> Result<void> {
                       static const Bytes get_perm =
                           ctrl_request(ctrl::kGetStateBlob, {ctrl::kStateFlagDecrypted, ctrl::kBlobPermanent, 0});
                       static const Bytes get_vol =
                           ctrl_request(ctrl::kGetStateBlob, {ctrl::kStateFlagDecrypted, ctrl::kBlobVolatile, 0});
                       static const Bytes stop = ctrl_request(ctrl::kStop);
                       static const Bytes init = ctrl_request(ctrl::kInit, {ctrl::kInitFlagDeleteVolatile});
                       static const Bytes get_random = *cmd_get_random(32);
                       double total = 0;
                       auto step = [&](const char* series, auto&& fn) -> Result<void> {
                           auto t0 = Clock::now();
                           auto r = fn();
                           auto t1 = Clock::now();
                           if (!r) return r;
                           total += micros(t0, t1);
                           if (series) record(b, series, micros(t0, t1));
                           return {};
                       };
                       if (auto r = step(nullptr, [&] { return ctrl_get_stateblob(t.ctrl.get(), get_perm, t.rsp, t.perm_blob); }); !r) return r;
                       if (auto r = step(nullptr, [&] { return ctrl_get_stateblob(t.ctrl.get(), get_vol, t.rsp, t.vol_blob); }); !r) return r;
                       const Bytes set_perm = ctrl_set_stateblob_request(ctrl::kBlobPermanent, t.perm_blob);
                       const Bytes set_vol = ctrl_set_stateblob_request(ctrl::kBlobVolatile, t.vol_blob);
                       if (auto r = step("CMD_STOP (running TPM)", [&] { return ctrl_call(t.ctrl.get(), stop, 4, t.rsp); }); !r) return r;
                       if (auto r = step("SET_STATEBLOB permanent", [&] { return ctrl_call(t.ctrl.get(), set_perm, 4, t.rsp); }); !r) return r;
                       if (auto r = step("SET_STATEBLOB volatile", [&] { return ctrl_call(t.ctrl.get(), set_vol, 4, t.rsp); }); !r) return r;
                       if (auto r = step("CMD_INIT (resume from the set blobs)", [&] { return ctrl_call(t.ctrl.get(), init, 4, t.rsp); }); !r) return r;
                       // The volatile state is restored by INIT: no TPM2_Startup needed.
                       if (auto r = step(nullptr, [&] { return transact_resubmitting(t, get_random); }); !r) return r;
                       if (auto r = expect_success(t.rsp, "TPM2_GetRandom after STOP/SET_STATEBLOB/INIT"); !r) return r;
                       record(b, "migrate cycle (GETx2 STOP SETx2 INIT cmd)", total);
                       return {};
                   }});
    return ops;
}

}  // namespace bench
