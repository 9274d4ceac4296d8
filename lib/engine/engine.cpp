#include "engine/engine.hpp"

extern "C" {
#include <libtpms/tpm_error.h>
#include <libtpms/tpm_library.h>
#include <libtpms/tpm_tis.h>
}

#include <cstdlib>
#include <cstring>

#include "tpm/commands.hpp"
#include "util/hot.hpp"
#include "util/log.hpp"

namespace vtpm::engine {
namespace {

// libtpms calls plain C functions with no user pointer: they reach the one
// engine of the process through this.
Engine* g_engine = nullptr;

TPM_RESULT cb_nvram_init() {
    auto r = g_engine->store().lock();
    if (!r) VTPM_LOG_ERROR("%s", r.error().message.c_str());
    return r.code();
}

TPM_RESULT cb_load(unsigned char** data, uint32_t* length, uint32_t /*tpm_number*/, const char* name) {
    *data = nullptr;
    *length = 0;
    auto r = g_engine->load_state(name);
    if (!r) {
        if (r.code() != rc::kRetry) VTPM_LOG_ERROR("loading %s failed: %s", name, r.error().message.c_str());
        return r.code();
    }
    // libtpms takes ownership and releases it with free().
    auto* buf = static_cast<unsigned char*>(std::malloc(r->size() ? r->size() : 1));
    if (!buf) return TPM_FAIL;
    std::memcpy(buf, r->data(), r->size());
    *data = buf;
    *length = static_cast<uint32_t>(r->size());
    return TPM_SUCCESS;
}

TPM_RESULT cb_store(const unsigned char* data, uint32_t length, uint32_t /*tpm_number*/, const char* name) {
    auto r = g_engine->store_state(name, ByteView(data, length));
    if (!r) VTPM_LOG_ERROR("storing %s failed: %s", name, r.error().message.c_str());
    return r.code();
}

TPM_RESULT cb_delete(uint32_t /*tpm_number*/, const char* name, TPM_BOOL must_exist) {
    auto r = g_engine->remove_state(name, must_exist != 0);
    if (!r) VTPM_LOG_ERROR("deleting %s failed: %s", name, r.error().message.c_str());
    return r.code();
}

TPM_RESULT cb_io_init() { return TPM_SUCCESS; }

VTPM_HOT TPM_RESULT cb_get_locality(TPM_MODIFIER_INDICATOR* loc, uint32_t /*tpm_number*/) {
    *loc = g_engine->locality();
    return TPM_SUCCESS;
}

TPMLIB_StateType to_libtpms(BlobType t) {
    switch (t) {
    case BlobType::Permanent: return TPMLIB_STATE_PERMANENT;
    case BlobType::Volatile: return TPMLIB_STATE_VOLATILE;
    case BlobType::Savestate: return TPMLIB_STATE_SAVE_STATE;
    }
    return TPMLIB_STATE_PERMANENT;
}

TPMLIB_TPMVersion to_libtpms(TpmVersion v) {
    return v == TpmVersion::V2 ? TPMLIB_TPM_VERSION_2 : TPMLIB_TPM_VERSION_1_2;
}

// Frees a malloc'ed libtpms buffer on scope exit.
struct FreeDeleter {
    void operator()(void* p) const noexcept { std::free(p); }
};

}  // namespace

Engine::Engine(Token, EngineConfig cfg, std::unique_ptr<store::StateStore> store)
    : cfg_(cfg), store_(std::move(store)) {}

Result<std::unique_ptr<Engine>> Engine::create(EngineConfig cfg, std::unique_ptr<store::StateStore> store) {
    if (g_engine) return make_error(rc::kFail, "a TPM engine already exists in this process");
    if (!store) return make_error(rc::kFail, "no state store given");
    if (TPMLIB_ChooseTPMVersion(to_libtpms(cfg.version)) != TPM_SUCCESS)
        return make_error(rc::kFail, cfg.version == TpmVersion::V2 ? "libtpms does not support TPM 2.0"
                                                                   : "libtpms does not support TPM 1.2");
    auto e = std::make_unique<Engine>(Token{}, cfg, std::move(store));
    g_engine = e.get();
    libtpms_callbacks cbs{};
    cbs.sizeOfStruct = sizeof cbs;
    cbs.tpm_nvram_init = cb_nvram_init;
    cbs.tpm_nvram_loaddata = cb_load;
    cbs.tpm_nvram_storedata = cb_store;
    cbs.tpm_nvram_deletename = cb_delete;
    cbs.tpm_io_init = cb_io_init;
    cbs.tpm_io_getlocality = cb_get_locality;
    if (TPMLIB_RegisterCallbacks(&cbs) != TPM_SUCCESS) {
        g_engine = nullptr;
        return make_error(rc::kFail, "libtpms refused the callbacks");
    }
    uint32_t min = 0, max = 0;
    e->max_command_ = TPMLIB_SetBufferSize(0, &min, &max);  // 0: only asks
    return e;
}

Engine::~Engine() {
    finish_power_off();
    power_off();
    if (auto r = flush_deferred(); !r) VTPM_LOG_ERROR("%s", r.error().message.c_str());
    std::free(respbuf_);
    if (g_engine == this) g_engine = nullptr;
}

Bytes Engine::execute(ByteView command) {
    Bytes rsp;
    execute(command, rsp);
    return rsp;
}

void Engine::execute(ByteView command, Bytes& rsp) {
    cmdbuf_.append(command);
    process({cmdbuf_.data(), cmdbuf_.size()}, rsp);
    cmdbuf_.clear();
}

VTPM_HOT void Engine::process(std::span<uint8_t> command, Bytes& rsp) {
    uint32_t rsp_len = 0;
    TPM_RESULT r =
        TPMLIB_Process(&respbuf_, &rsp_len, &respbuf_size_, command.data(), static_cast<uint32_t>(command.size()));
    last_cc_ = tpm::command_code(command);
    if (r != TPM_SUCCESS || !respbuf_ || rsp_len < 10) [[unlikely]] {
        process_failed(r, rsp);
        return;
    }
    rsp.assign(respbuf_, respbuf_ + rsp_len);
}

// Out of line: the command path's code stays a few cache lines long.
[[gnu::cold]] void Engine::process_failed(uint32_t result, Bytes& rsp) {
    VTPM_LOG_ERROR("libtpms failed to process command 0x%x: 0x%x", last_cc_, result);
    rsp = fatal_response(tpm::kTpm2RcFailure, tpm::kTpm12Fail);
}

Bytes Engine::fatal_response(uint32_t rc_tpm2, uint32_t rc_tpm12) const {
    return tpm2() ? tpm::response_header(tpm::kTpm2StNoSessions, rc_tpm2)
                  : tpm::response_header(tpm::kTpm12TagRspCommand, rc_tpm12);
}

Bytes Engine::host_command(ByteView command) {
    if (!running_) return fatal_response(tpm::kTpm2RcFailure, tpm::kTpm12Fail);
    const uint32_t guest_cc = last_cc_;
    Bytes rsp = execute(command);
    last_cc_ = guest_cc;
    return rsp;
}

Bytes Engine::command(ByteView command) {
    Bytes rsp;
    this->command(command, rsp);
    return rsp;
}

namespace {
// What a guest sends: a plain command (no TCG prefix) that is not SetLocality.
VTPM_HOT bool plain_command(ByteView command, bool tpm2) {
    return command.size() >= 10 && !(tpm2 && tpm::has_send_command_prefix(command)) &&
           tpm::command_code(command) != tpm::kCcSetLocality;
}
}  // namespace

void Engine::command(ByteView command, Bytes& rsp) {
    if (running_ && plain_command(command, tpm2())) {
        execute(command, rsp);
        return;
    }
    command_other(command, rsp);
}

VTPM_HOT void Engine::command_in_place(std::span<uint8_t> command, Bytes& rsp) {
    if (running_ && plain_command(command, tpm2())) [[likely]] {
        process(command, rsp);
        return;
    }
    command_other(command, rsp);
}

void Engine::command_other(ByteView command, Bytes& rsp) {
    // TCG/mssim "send command" prefix (TPM 2 only): u32 8, locality, u32 length, command.
    bool framed = false;
    ByteView cmd = command;
    if (tpm2() && tpm::has_send_command_prefix(command)) {
        framed = true;
        uint8_t loc = command.size() > 4 ? command[4] : 0;
        cmd = command.size() >= 9 ? command.subspan(9) : ByteView{};
        if (loc > 4 || (loc == 4 && cfg_.reject_locality_4)) {
            cmd = {};
        } else {
            locality_ = loc;
        }
    }
    if (cmd.size() < 10) {
        rsp = fatal_response(tpm::kTpm2RcInsufficient, tpm::kTpm12BadParamSize);
    } else if (!running_) {
        rsp = fatal_response(tpm::kTpm2RcFailure, tpm::kTpm12Fail);
    } else if (tpm::command_code(cmd) == tpm::kCcSetLocality) {
        // swtpm wants the locality byte before it looks at --locality.
        if (cmd.size() < 11) {
            rsp = fatal_response(tpm::kTpm2RcInsufficient, tpm::kTpm12BadParamSize);
        } else if (!cfg_.allow_set_locality) {
            rsp = fatal_response(tpm::kTpm2RcFailure, tpm::kTpm12Fail);
        } else if (cmd[10] > 4 || (cmd[10] == 4 && cfg_.reject_locality_4)) {
            rsp = fatal_response(tpm::kTpm2RcLocality, tpm::kTpm12BadLocality);
        } else {
            locality_ = cmd[10];
            rsp = fatal_response(0, 0);
        }
    } else {
        execute(cmd, rsp);
    }
    if (!framed) return;
    // u32 length, the response, u32 0.
    const auto len = static_cast<uint32_t>(rsp.size());
    rsp.insert(rsp.begin(), 4, 0);
    store_be32(rsp.data(), len);
    put_be32(rsp, 0);
}

void Engine::auto_shutdown() {
    // Without the lock the state may belong to a migration destination now.
    if (!will_auto_shutdown()) return;
    for (uint16_t su : {uint16_t{1} /*SU_STATE*/, uint16_t{0} /*SU_CLEAR*/}) {
        uint32_t r = tpm::response_code(execute(tpm::shutdown(su)));
        if (r == 0) {
            VTPM_LOG_INFO("sent TPM2_Shutdown(%s) before power-off", su ? "SU_STATE" : "SU_CLEAR");
            return;
        }
        if (r == tpm::kTpm2RcInitialize) return;  // TPM was never started: nothing to shut down
    }
}

Result<void> Engine::init(bool delete_volatile) {
    finish_power_off();
    if (auto r = flush_deferred(); !r) return r;
    auto_shutdown();
    TPMLIB_Terminate();
    running_ = false;
    forgo_auto_shutdown_ = false;
    if (TPMLIB_ChooseTPMVersion(to_libtpms(cfg_.version)) != TPM_SUCCESS)
        return make_error(rc::kFail, "libtpms refused the TPM version");
    TPM_RESULT r = TPMLIB_MainInit();
    if (r != TPM_SUCCESS) {
        TPMLIB_Terminate();
        return make_error(r, "TPM initialisation failed (libtpms result " + hex32(r) + ")");
    }
    permanent_cleared_ = false;  // MainInit took the cached blobs
    if (delete_volatile) {
        auto d = store_->remove(store::kVolatile, false);
        if (!d) {
            TPMLIB_Terminate();
            return d;
        }
    }
    running_ = true;
    last_cc_ = 0;
    return {};
}

void Engine::stop() {
    if (running_ && !held_ && will_auto_shutdown()) {
        // The orderly shutdown and the power-off happen when next needed
        // (finish_power_off): when QEMU's restore follows, SET_STATEBLOB
        // replaces what they would write, and CMD_STOP costs what swtpm's does.
        running_ = false;
        power_off_pending_ = true;
        return;
    }
    finish_power_off();
    power_off();
}

void Engine::shutdown_clear() {
    if (!running_ || !tpm2() || forgo_auto_shutdown_ || !store_->locked()) return;
    if (tpm::response_code(execute(tpm::shutdown(0))) == 0)
        VTPM_LOG_INFO("sent TPM2_Shutdown(SU_CLEAR) before power-off: no vPCRs resume from the disk");
}

void Engine::power_off() {
    deferring_ = true;
    if (cfg_.clear_at_power_off)
        shutdown_clear();
    else
        auto_shutdown();
    deferring_ = false;
    TPMLIB_Terminate();
    running_ = false;
    // Powered off without a refusal: what a restore wrote is the state now.
    if (auto r = release_writes(); !r) VTPM_LOG_ERROR("%s", r.error().message.c_str());
}

void Engine::finish_power_off() {
    if (!power_off_pending_) return;
    power_off_pending_ = false;
    running_ = true;  // libtpms still runs the TPM that CMD_STOP stopped
    power_off();
}

bool Engine::will_auto_shutdown() const {
    return running_ && tpm2() && cfg_.auto_shutdown && !forgo_auto_shutdown_ && last_cc_ != tpm::kTpm2CcShutdown &&
           store_->locked();
}


Result<void> Engine::set_locality(uint8_t loc) {
    if (loc > 4 || (loc == 4 && cfg_.reject_locality_4))
        return make_error(rc::kBadLocality, "locality " + std::to_string(loc) + " is not allowed");
    locality_ = loc;
    return {};
}

Result<bool> Engine::tpm_established() const {
    TPM_BOOL b = 0;
    TPM_RESULT r = TPM_IO_TpmEstablished_Get(&b);
    if (r != TPM_SUCCESS) return make_error(r, "reading the TPM established flag failed");
    return b != 0;
}

Result<void> Engine::reset_tpm_established(uint8_t loc) {
    if (loc > 4) return make_error(rc::kBadLocality, "locality " + std::to_string(loc) + " is out of range");
    finish_power_off();
    uint8_t saved = locality_;
    locality_ = loc;
    TPM_RESULT r = TPM_IO_TpmEstablished_Reset();
    locality_ = saved;
    if (r != TPM_SUCCESS) return make_error(r, "resetting the TPM established flag failed");
    return {};
}

Result<void> Engine::hash_start() {
    finish_power_off();
    TPM_RESULT r = TPM_IO_Hash_Start();
    if (r != TPM_SUCCESS) return make_error(r, "TPM_Hash_Start failed");
    return {};
}

Result<void> Engine::hash_data(ByteView data) {
    TPM_RESULT r = TPM_IO_Hash_Data(data.data(), static_cast<uint32_t>(data.size()));
    if (r != TPM_SUCCESS) return make_error(r, "TPM_Hash_Data failed");
    return {};
}

Result<void> Engine::hash_end() {
    TPM_RESULT r = TPM_IO_Hash_End();
    if (r != TPM_SUCCESS) return make_error(r, "TPM_Hash_End failed");
    return {};
}

Result<void> Engine::cancel() {
    TPM_RESULT r = TPMLIB_CancelCommand();
    if (r != TPM_SUCCESS) return make_error(r, "cancel failed");
    return {};
}

Result<void> Engine::store_volatile() {
    finish_power_off();
    unsigned char* raw = nullptr;
    uint32_t len = 0;
    TPM_RESULT r = TPMLIB_VolatileAll_Store(&raw, &len);
    std::unique_ptr<unsigned char, FreeDeleter> buf(raw);
    if (r != TPM_SUCCESS) return make_error(r, "serialising the volatile state failed");
    SecureBytes plain{ByteView(buf.get(), len)};
    std::memset(buf.get(), 0, len);
    return store_state(std::string(store::kVolatile), plain.view());
}

void Engine::hold_writes() {
    if (!held_) held_.emplace();
}

Result<void> Engine::release_writes() {
    if (!held_) return {};
    auto held = std::move(*held_);
    held_.reset();
    for (auto& [name, data] : held) {
        auto r = data ? store_->store(name, data->view()) : store_->remove(name, false);
        if (!r) return make_error(r.code(), "writing the held state " + name + ": " + r.error().message);
    }
    return {};
}

void Engine::discard_writes() { held_.reset(); }

Result<void> Engine::flush_deferred() {
    finish_power_off();
    Writes pending = std::move(deferred_);
    deferred_.clear();
    for (auto& [name, data] : pending) {
        auto r = data ? store_state(name, data->view()) : remove_state(name, false);
        if (!r) return make_error(r.code(), "writing the state of the automatic TPM2_Shutdown: " + r.error().message);
    }
    return {};
}

Result<SecureBytes> Engine::load_state(const std::string& name) {
    for (const Writes* w : {held_ ? &*held_ : nullptr, &deferred_}) {
        if (!w) continue;
        for (auto it = w->rbegin(); it != w->rend(); ++it)
            if (it->first == name) {
                if (!it->second) return make_error(rc::kRetry, name + " does not exist");
                return SecureBytes(it->second->view());
            }
    }
    return store_->load(name);
}

Result<void> Engine::store_state(const std::string& name, ByteView plain) {
    ++tpm_writes_;
    if (held_) held_->emplace_back(name, SecureBytes(plain));
    else if (deferring_) deferred_.emplace_back(name, SecureBytes(plain));
    else return store_->store(name, plain);
    return {};
}

Result<void> Engine::remove_state(const std::string& name, bool must_exist) {
    ++tpm_writes_;
    if (held_) held_->emplace_back(name, std::nullopt);
    else if (deferring_) deferred_.emplace_back(name, std::nullopt);
    else return store_->remove(name, must_exist);
    return {};
}

Result<Engine::BufferSize> Engine::buffer_size(uint32_t wanted) {
    if (wanted != 0 && running_)
        return make_error(rc::kBadOrdinal, "the buffer size can only be changed while the TPM is stopped");
    finish_power_off();
    BufferSize b{};
    b.size = TPMLIB_SetBufferSize(wanted, &b.min, &b.max);
    max_command_ = b.size;
    return b;
}

Result<std::string> Engine::info(uint32_t flags) const {
    std::unique_ptr<char, FreeDeleter> s(TPMLIB_GetInfo(static_cast<TPMLIB_InfoFlags>(flags)));
    if (!s) return make_error(rc::kSize, "libtpms returned no info");
    return std::string(s.get());
}

Result<PlainBlob> Engine::get_state(BlobType type) {
    if (!running_) return make_error(rc::kBadOrdinal, "the TPM is not running");
    switch (type) {
    case BlobType::Volatile: {
        unsigned char* raw = nullptr;
        uint32_t len = 0;
        TPM_RESULT r = TPMLIB_VolatileAll_Store(&raw, &len);
        std::unique_ptr<unsigned char, FreeDeleter> buf(raw);
        if (r != TPM_SUCCESS) return make_error(r, "serialising the volatile state failed");
        PlainBlob b{SecureBytes{ByteView(buf.get(), len)}};
        std::memset(buf.get(), 0, len);
        return b;
    }
    case BlobType::Permanent:
    case BlobType::Savestate: {
        auto r = load_state(std::string(type == BlobType::Permanent ? store::kPermall : store::kSavestate));
        if (!r) return r.error();
        return PlainBlob{std::move(*r)};
    }
    }
    return make_error(rc::kBadParameter, "unknown blob type");
}

Result<void> Engine::set_state(BlobType type, ByteView plain) {
    if (running_) return make_error(rc::kInvalidPostInit, "state can only be set while the TPM is stopped");
    finish_power_off();
    // libtpms (0.9) validates a volatile blob against the cached permanent
    // one and crashes (NULL dereference) when that was set empty.
    if (type == BlobType::Volatile && !plain.empty() && permanent_cleared_)
        return make_error(rc::kFail, "a volatile state blob needs a permanent one, and that was set empty");
    auto l = store_->lock();
    if (!l) return l;
    TPM_RESULT r = TPMLIB_SetState(to_libtpms(type), plain.empty() ? nullptr : plain.data(),
                                   static_cast<uint32_t>(plain.size()));
    if (r != TPM_SUCCESS) {
        permanent_cleared_ = false;  // a rejected blob makes libtpms drop every cached one
        return make_error(r, "libtpms rejected the state blob (result " + hex32(r) + ")");
    }
    if (type == BlobType::Permanent) {
        permanent_cleared_ = plain.empty();
        // The state the automatic TPM2_Shutdown left is replaced: never written.
        std::erase_if(deferred_, [](const auto& w) { return w.first == store::kPermall; });
    }
    return {};
}

Result<void> Engine::startup(int type) {
    if (!running_) return make_error(rc::kFail, "the TPM is not running");
    Bytes cmd;
    if (tpm2()) {
        if (type == 2) return make_error(rc::kBadParameter, "startup-deactivated is not valid for TPM 2");
        cmd = tpm::startup(static_cast<uint16_t>(type));
    } else {
        cmd = tpm::tpm12_startup(static_cast<uint16_t>(type + 1));
    }
    uint32_t r = tpm::response_code(execute(cmd));
    if (r != 0) VTPM_LOG_WARN("the startup command at program start returned 0x%x", r);
    return {};
}

}  // namespace vtpm::engine
