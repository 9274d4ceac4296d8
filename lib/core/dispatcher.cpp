#include "core/dispatcher.hpp"

#include <algorithm>
#include <thread>
#include <utility>

#include "store/blob.hpp"
#include "store/state_store.hpp"
#include "tpm/commands.hpp"
#include "util/hot.hpp"
#include "util/log.hpp"

namespace vtpm::core {

namespace {

// One control connection at a time per process: one budget.
struct RefusalBudget {
    unsigned logged = 0, unlogged = 0;
} g_refusals;

}  // namespace

Reply result_reply(uint32_t rc) { return Reply{ctrl::encode_result(rc), Action::None}; }

bool may_log_refusal() {
    if (g_refusals.logged < Dispatcher::kRefusalLinesPerConnection) {
        ++g_refusals.logged;
        return true;
    }
    if (g_refusals.unlogged++ == 0)
        VTPM_LOG_ERROR("%u control messages refused on this connection: the rest are counted, not logged",
                       Dispatcher::kRefusalLinesPerConnection);
    return false;
}

Reply error_reply(const Error& e, std::string_view what) {
    if (may_log_refusal()) VTPM_LOG_ERROR("%.*s: %s", static_cast<int>(what.size()), what.data(), e.message.c_str());
    return result_reply(e.code);
}

Dispatcher::Dispatcher(engine::Engine& engine, DispatcherConfig cfg)
    : engine_(engine), cfg_(std::move(cfg)), framer_(ctrl::FramerOptions{cfg_.lock_storage, cfg_.vendor_commands}) {
    add_swtpm_commands(*this);
}

Dispatcher::~Dispatcher() {
    if (engine_.running())
        for (BlobFilter* f : filters_) f->before_power_off(engine_);
}

void Dispatcher::add_command(ctrl::Cmd code, Command cmd) { commands_[static_cast<uint32_t>(code)] = std::move(cmd); }

void Dispatcher::add_filter(BlobFilter& f) { filters_.push_back(&f); }

uint64_t Dispatcher::capabilities() const {
    uint64_t caps = 0;
    for (const auto& [code, cmd] : commands_) caps |= cmd.capability;
    if (engine_.tpm2()) caps |= ctrl::cap::kSendCommandHeader;
    return caps;
}

Result<void> Dispatcher::relock(uint32_t retries) {
    for (uint32_t i = 0;; ++i) {
        auto r = engine_.store().lock();
        if (r) {
            lock_released_ = false;
            return r;
        }
        if (i >= retries) return r;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

void Dispatcher::begin_connection() { g_refusals = {}; }

void Dispatcher::end_connection() {
    if (g_refusals.unlogged)
        VTPM_LOG_ERROR("%u more refused control messages on that connection were not logged", g_refusals.unlogged);
    g_refusals = {};
}

Reply Dispatcher::handle(const ctrl::Frame& frame, const TransportState& ts) {
    // The command's name is looked up for errors only: this is every message's path.
    if (frame.kind == ctrl::Frame::Kind::Fatal) {
        const std::string_view name = ctrl::cmd_name(frame.code);
        VTPM_LOG_ERROR("control message %.*s %s: closing the connection", static_cast<int>(name.size()), name.data(),
                       frame.reason.c_str());
        return Reply{ctrl::encode_result(frame.fatal_result), Action::Close};
    }
    if (!frame.request) {
        // swtpm answers "not running" before it looks at the message's size.
        if (auto it = commands_.find(frame.code); it != commands_.end() && !state_allows(it->second.needs))
            return result_reply(rc::kBadOrdinal);
        if (may_log_refusal()) {
            const std::string_view name = ctrl::cmd_name(frame.code);
            VTPM_LOG_ERROR("control message %.*s rejected: %s", static_cast<int>(name.size()), name.data(),
                           frame.request.error().message.c_str());
        }
        return result_reply(frame.request.code());
    }
    return handle(frame.code, *frame.request, ts);
}

Reply Dispatcher::handle_message(ByteView msg, const TransportState& ts) {
    ctrl::Frame f;
    f.kind = ctrl::Frame::Kind::Message;
    f.code = msg.size() >= 4 ? load_be32(msg.data()) : 0;
    f.size = msg.size();
    f.request = ctrl::decode_request(msg, cfg_.lock_storage, cfg_.vendor_commands);
    return handle(f, ts);
}

Reply Dispatcher::handle(uint32_t code, const ctrl::Request& req, const TransportState& ts) {
    auto it = commands_.find(code);
    if (it == commands_.end() || !state_allows(it->second.needs)) return result_reply(rc::kBadOrdinal);
    return it->second.handle(*this, req, ts);
}

bool Dispatcher::state_allows(Needs needs) const {
    switch (needs) {
    case Needs::Running:
        return engine_.running();
    case Needs::Stopped:
        return !engine_.running();
    case Needs::Any:
        break;
    }
    return true;
}

Bytes Dispatcher::tpm_command(ByteView command) {
    Bytes rsp;
    tpm_command(command, rsp);
    return rsp;
}

void Dispatcher::tpm_command(ByteView command, Bytes& rsp) {
    if (!may_run_tpm_command(rsp)) return;
    engine_.command(command, rsp);
}

VTPM_HOT bool Dispatcher::may_run_tpm_command(Bytes& rsp) {
    if (lock_released_ && !relock(0)) [[unlikely]] {
        // After handing the state to a migration destination this process
        // must not touch it again unless it gets the lock back.
        VTPM_LOG_ERROR("TPM command refused: the state lock was released for an outgoing migration");
        rsp = engine_.fatal_response(tpm::kTpm2RcFailure, tpm::kTpm12Fail);
        return false;
    }
    if (!tpm_commands_admitted()) [[unlikely]] {
        rsp = engine_.fatal_response(tpm::kTpm2RcFailure, tpm::kTpm12Fail);
        return false;
    }
    return true;
}

VTPM_HOT bool Dispatcher::tpm_commands_admitted() {
    for (BlobFilter* f : filters_)
        if (!f->admit_tpm_command(engine_)) return false;  // the filter logged why
    return true;
}

VTPM_HOT size_t Dispatcher::take_tpm_command(std::span<uint8_t> buffered, Bytes& rsp) {
    const auto total = tpm::command_frame_size(
        buffered, engine_.tpm2(), std::min(engine_.max_command_size(), kMaxTpmCommand - tpm::kSendCommandPrefix));
    if (!total) return 0;
    if (may_run_tpm_command(rsp)) engine_.command_in_place(buffered.first(*total), rsp);
    return *total;
}

void Dispatcher::set_peer_pid(pid_t pid) {
    for (BlobFilter* f : filters_) f->set_peer_pid(pid);
}

Result<void> Dispatcher::init(bool delete_volatile) {
    if (lock_released_) {
        if (auto l = relock(0); !l) return l;
    }
    last_volatile_.reset();
    for (BlobFilter* f : filters_) {
        if (auto r = f->before_init(engine_); !r) {
            if (!engine_.running()) abandon_restore();
            return r;
        }
    }
    auto res = engine_.init(delete_volatile);
    for (BlobFilter* f : filters_) {
        if (res) {
            if (auto r = f->after_init(engine_); !r) {
                // A filter's duty (e.g. tainting the vPCRs) failed: the guest
                // must not get this TPM.
                engine_.stop();
                res = make_error(rc::kFail, r.error().message + ", TPM stopped");
            }
        }
        f->end_restore();
    }
    return res;
}

void Dispatcher::stop() {
    if (engine_.running())
        for (BlobFilter* f : filters_) f->before_power_off(engine_);
    engine_.stop();
}

Result<void> Dispatcher::store_volatile() {
    for (BlobFilter* f : filters_)
        if (auto r = f->admit_store_volatile(engine_); !r) return r;
    return engine_.store_volatile();
}

Result<store::MigrationBlob> Dispatcher::export_blob(engine::BlobType type, bool decrypted) {
    auto plain = engine_.get_state(type);
    if (!plain) return plain.error();
    auto blob = store::encode_migration_blob(plain->data, engine_.store().state_key(),
                                             cfg_.migration_key ? &*cfg_.migration_key : nullptr, decrypted);
    if (!blob) return blob;
    for (BlobFilter* f : filters_)
        if (auto r = f->on_export(engine_, type, plain->data, blob->bytes); !r) return r.error();
    return blob;
}

Result<void> Dispatcher::import_blob(engine::BlobType type, uint32_t state_flags, ByteView blob) {
    if (engine_.running()) return make_error(rc::kBadOrdinal, "the TPM is running: stop it first");
    // An empty blob ("no such state") passes the filters too: a restore
    // that drops the volatile state is a restore they must judge.
    SecureBytes plain;
    if (!blob.empty()) {
        auto p = store::decode_migration_blob(blob, state_flags, engine_.store().state_key(),
                                              cfg_.migration_key ? &*cfg_.migration_key : nullptr);
        if (!p) {
            // A restore with a blob that cannot be read is over, as one
            // with a refused blob.
            if (has_filters()) abandon_restore();
            return p.error();
        }
        plain = std::move(*p);
    }
    for (BlobFilter* f : filters_) {
        if (auto r = f->on_import(engine_, type, blob, plain.view()); !r) {
            abandon_restore();
            return r.error();
        }
    }
    auto r = engine_.set_state(type, plain.view());
    if (!r) {
        // libtpms refused what the filters took: nothing of this restore
        // may go on to CMD_INIT (a checked volatile blob would otherwise be
        // counted as restored over the state on disk).
        if (has_filters()) abandon_restore();
        return r;
    }
    if (!blob.empty()) lock_released_ = false;
    return r;
}

void Dispatcher::abandon_restore() {
    // libtpms takes an empty permanent blob for "no TPM yet" and would
    // manufacture a new one over the state on disk: the permanent blob goes
    // back to what the store holds.
    for (auto t : {engine::BlobType::Volatile, engine::BlobType::Savestate}) (void)engine_.set_state(t, {});
    if (auto disk = engine_.store().load(store::kPermall))
        (void)engine_.set_state(engine::BlobType::Permanent, disk->view());
    else
        (void)engine_.set_state(engine::BlobType::Permanent, {});  // no state on disk: nothing to lose
    for (BlobFilter* g : filters_) g->end_restore();
}

Reply Dispatcher::get_state_blob(const ctrl::GetStateBlobReq& req) {
    using ctrl::encode_stateblob;
    const auto wire_type = engine::blob_type(req.type);
    if (!wire_type) {
        // swtpm looks for a file of that type, finds none and answers
        // TPM_RETRY ("no such blob"); so do we, byte for byte.
        if (may_log_refusal()) VTPM_LOG_ERROR("CMD_GET_STATEBLOB: unknown blob type %u", req.type);
        return Reply{encode_stateblob(rc::kRetry, 0, {}, 0)};
    }
    const engine::BlobType type = *wire_type;
    const bool keep = type == engine::BlobType::Volatile && has_filters();
    const bool cont = keep && req.offset > 0 && last_volatile_;
    Result<store::MigrationBlob> blob =
        cont ? Result<store::MigrationBlob>(
                   store::MigrationBlob{Bytes(last_volatile_->bytes.view().begin(), last_volatile_->bytes.view().end()),
                                        last_volatile_->state_flags})
             : export_blob(type, (req.state_flags & store::kStateFlagDecrypted) != 0);
    if (blob && keep && !cont) last_volatile_ = KeptBlob{SecureBytes(blob->bytes), blob->state_flags};
    Reply reply;
    if (!blob) {
        if (blob.code() != rc::kRetry)
            if (may_log_refusal())
                VTPM_LOG_ERROR("CMD_GET_STATEBLOB type %u: %s", req.type, blob.error().message.c_str());
        reply.bytes = encode_stateblob(blob.code(), 0, {}, 0);
    } else {
        reply.bytes = encode_stateblob(rc::kSuccess, blob->state_flags, blob->bytes, req.offset);
    }
    // QEMU fetches permanent, volatile, then savestate: after the last one the
    // destination may take over shared storage.
    if (type == engine::BlobType::Savestate && cfg_.release_lock_outgoing) {
        if (auto r = engine_.flush_deferred(); !r) VTPM_LOG_ERROR("%s", r.error().message.c_str());
        engine_.store().unlock();
        lock_released_ = true;
        VTPM_LOG_INFO("released the state lock for the outgoing migration");
    }
    return reply;
}

}  // namespace vtpm::core
