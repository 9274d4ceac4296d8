#include "ctrl/dispatcher.hpp"

#include <unistd.h>

#include <thread>
#include <utility>

#include "snapshot/record.hpp"
#include "store/blob.hpp"
#include "store/state_store.hpp"

#include "util/log.hpp"

namespace vtpm::ctrl {
namespace {

Reply result(uint32_t rc) { return Reply{encode_result(rc), Action::None}; }

Reply error(const Error& e, std::string_view what) {
    VTPM_LOG_ERROR("%.*s: %s", static_cast<int>(what.size()), what.data(), e.message.c_str());
    return result(e.code);
}

template <class... Ts>
struct Overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace

Dispatcher::Dispatcher(engine::Engine& engine, DispatcherConfig cfg) : engine_(engine), cfg_(std::move(cfg)) {}

uint64_t Dispatcher::capabilities() const {
    uint64_t caps = cap::kInit | cap::kShutdown | cap::kGetTpmEstablished | cap::kSetLocality | cap::kHashing |
                    cap::kCancelTpmCmd | cap::kStoreVolatile | cap::kResetTpmEstablished | cap::kGetStateBlob |
                    cap::kSetStateBlob | cap::kStop | cap::kGetConfig | cap::kSetDataFd | cap::kSetBufferSize |
                    cap::kGetInfo;
    if (engine_.tpm2()) caps |= cap::kSendCommandHeader;
    if (cfg_.lock_storage) caps |= cap::kLockStorage;
    if (cfg_.vendor_tpm_command) caps |= cap::kVtpmTpmCommand;
    if (cfg_.vendor_tpm_command && cfg_.snapshot) caps |= cap::kVtpmRamDigest | cap::kVtpmSnapshot;
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

Reply Dispatcher::handle(ByteView msg, const TransportState& ts) {
    auto decoded = decode_request(msg, cfg_.lock_storage, cfg_.vendor_tpm_command);
    if (!decoded) {
        if (msg.size() >= 4)
            VTPM_LOG_ERROR("control message %s rejected: %s", std::string(cmd_name(load_be32(msg.data()))).c_str(),
                           decoded.error().message.c_str());
        else
            VTPM_LOG_ERROR("control message rejected: %s", decoded.error().message.c_str());
        return result(decoded.code());
    }
    const bool running = engine_.running();
    const Reply not_running = result(rc::kBadOrdinal);
    // The shape of most commands: a status from the engine, as a 4-byte result.
    auto status = [](const Result<void>& r, const char* what) {
        return r ? result(rc::kSuccess) : error(r.error(), what);
    };
    // The same for commands that need a running TPM.
    auto when_running = [&](auto&& call, const char* what) { return running ? status(call(), what) : not_running; };

    return std::visit(
        Overloaded{
            [&](const GetCapabilityReq&) { return Reply{encode_capability(capabilities())}; },
            [&](const InitReq& r) {
                if (lock_released_) {
                    if (auto l = relock(0); !l) return error(l.error(), "CMD_INIT");
                }
                auto res = init((r.flags & kInitFlagDeleteVolatile) != 0);
                if (!res) return error(res.error(), "CMD_INIT");
                VTPM_LOG_INFO("TPM initialised");
                return result(rc::kSuccess);
            },
            [&](const ShutdownReq&) {
                engine_.stop();
                return Reply{encode_result(rc::kSuccess), Action::Shutdown};
            },
            [&](const GetTpmEstablishedReq&) {
                if (!running) return not_running;
                auto b = engine_.tpm_established();
                if (!b) return error(b.error(), "CMD_GET_TPMESTABLISHED");
                return Reply{encode_tpm_established(rc::kSuccess, *b)};
            },
            [&](const SetLocalityReq& r) { return status(engine_.set_locality(r.locality), "CMD_SET_LOCALITY"); },
            [&](const HashStartReq&) { return when_running([&] { return engine_.hash_start(); }, "CMD_HASH_START"); },
            [&](const HashDataReq& r) { return when_running([&] { return engine_.hash_data(r.data); }, "CMD_HASH_DATA"); },
            [&](const HashEndReq&) { return when_running([&] { return engine_.hash_end(); }, "CMD_HASH_END"); },
            [&](const CancelTpmCmdReq&) { return when_running([&] { return engine_.cancel(); }, "CMD_CANCEL_TPM_CMD"); },
            [&](const StoreVolatileReq&) { return when_running([&] { return engine_.store_volatile(); }, "CMD_STORE_VOLATILE"); },
            [&](const ResetTpmEstablishedReq& r) { return when_running([&] { return engine_.reset_tpm_established(r.locality); }, "CMD_RESET_TPMESTABLISHED"); },
            [&](const GetStateBlobReq& r) {
                if (!running) return not_running;
                return get_state_blob(r);
            },
            [&](const SetStateBlobReq& r) {
                if (running) return not_running;
                return set_state_blob(r);
            },
            [&](const StopReq&) {
                engine_.stop();
                return result(rc::kSuccess);
            },
            [&](const GetConfigReq&) {
                uint32_t flags = 0;
                if (engine_.store().state_key()) flags |= kConfigFlagFileKey;
                if (cfg_.migration_key) flags |= kConfigFlagMigrationKey;
                return Reply{encode_config(rc::kSuccess, flags)};
            },
            [&](const SetDataFdReq&) {
                if (ts.data_channel_busy) return result(rc::kIoError);
                if (ts.received_fd < 0) return result(rc::kBadParameter);
                return Reply{encode_result(rc::kSuccess), Action::AdoptDataFd};
            },
            [&](const SetBufferSizeReq& r) {
                auto b = engine_.buffer_size(r.buffersize);
                if (!b) return error(b.error(), "CMD_SET_BUFFERSIZE");
                return Reply{encode_buffersize(rc::kSuccess, b->size, b->min, b->max)};
            },
            [&](const GetInfoReq& r) { return get_info(r); },
            [&](const LockStorageReq& r) {
                auto res = relock(r.retries);
                return res ? result(rc::kSuccess) : error(Error{rc::kFail, res.error().message}, "CMD_LOCK_STORAGE");
            },
            [&](const VendorTpmCommandReq& r) {
                if (!running || !engine_.tpm2()) return not_running;
                if (lock_released_) return result(rc::kFail);  // the state belongs to the migration target now
                // One command between the guest's: logged by code only, never by content.
                VTPM_LOG_INFO("CMD_VTPM_TPM_COMMAND: TPM command %s from the host", hex32(load_be32(r.command.data() + 6)).c_str());
                Bytes rsp = engine_.process(r.command);
                return Reply{encode_vendor_tpm_response(rc::kSuccess, rsp)};
            },
            [&](const VendorRamDigestReq& r) {
                if (!cfg_.snapshot) return result(rc::kBadOrdinal);
                snapshot::QemuDigest d;
                d.page_count = r.page_count;
                std::copy(r.root.begin(), r.root.end(), d.root.begin());
                cfg_.snapshot->set_qemu_digest(r.phase, d);
                VTPM_LOG_INFO("CMD_VTPM_RAM_DIGEST: QEMU's digest of %llu pages for the next %s",
                              static_cast<unsigned long long>(r.page_count), r.phase == 1 ? "save" : "restore");
                return result(rc::kSuccess);
            },
            [&](const VendorSnapshotReq&) {
                if (!cfg_.snapshot) return result(rc::kBadOrdinal);
                if (!running || !engine_.tpm2()) return not_running;
                auto vol = engine_.get_state(engine::BlobType::Volatile);
                if (!vol) return error(vol.error(), "CMD_VTPM_SNAPSHOT");
                auto rec = snapshot_record(vol->data);
                if (!rec) return error(rec.error(), "CMD_VTPM_SNAPSHOT");
                if (!*rec) return result(rc::kFail);  // verification off or impossible: logged
                return Reply{encode_vendor_tpm_response(rc::kSuccess, **rec)};
            },
        },
        *decoded);
}

void Dispatcher::set_peer_pid(pid_t pid) {
    if (cfg_.snapshot) cfg_.snapshot->set_peer_pid(pid);
}

Result<void> Dispatcher::init(bool delete_volatile) {
    const bool taint = std::exchange(taint_at_init_, false);
    restored_permanent_.reset();
    last_volatile_.reset();
    auto res = engine_.init(delete_volatile);
    if (!res || !taint) return res;
    // Policy taint: the guest must never get these vPCRs untainted.
    if (auto t = cfg_.snapshot->taint(engine_); !t) {
        engine_.stop();
        return make_error(rc::kFail, "tainting the vPCRs failed, TPM stopped: " + t.error().message);
    }
    return res;
}

Result<store::MigrationBlob> Dispatcher::export_blob(engine::BlobType type, bool decrypted) {
    auto plain = engine_.get_state(type);
    if (!plain) return plain.error();
    auto blob = store::encode_migration_blob(plain->data, engine_.store().state_key(),
                                             cfg_.migration_key ? &*cfg_.migration_key : nullptr, decrypted);
    if (!blob || type != engine::BlobType::Volatile || !cfg_.snapshot) return blob;
    // The VM is paused while QEMU fetches its state: hash guest RAM now and
    // let the record travel in the volatile blob, beside swtpm's records.
    auto rec = snapshot_record(plain->data);
    if (!rec) return rec.error();
    if (*rec) store::append_blob_tlv(blob->bytes, snapshot::kTagSnapshotRecord, **rec);
    return blob;
}

Result<std::optional<Bytes>> Dispatcher::snapshot_record(ByteView volatile_plain) {
    auto perm = engine_.get_state(engine::BlobType::Permanent);
    if (!perm) return perm.error();
    return cfg_.snapshot->make_record(engine_, perm->data, volatile_plain);
}

Result<void> Dispatcher::import_blob(engine::BlobType type, uint32_t state_flags, ByteView blob) {
    if (engine_.running()) return make_error(rc::kBadOrdinal, "the TPM is running: stop it first");
    if (blob.empty()) return engine_.set_state(type, {});
    auto plain = store::decode_migration_blob(blob, state_flags, engine_.store().state_key(),
                                              cfg_.migration_key ? &*cfg_.migration_key : nullptr);
    if (!plain) return plain.error();
    if (cfg_.snapshot && type == engine::BlobType::Permanent) restored_permanent_ = snapshot::sha256_of({plain->view()});
    if (cfg_.snapshot && type == engine::BlobType::Volatile) {
        // Check before libtpms sees the vPCRs. A volatile blob alone is
        // checked against the permanent state on disk.
        snapshot::Digest perm{};
        if (restored_permanent_) perm = *restored_permanent_;
        else if (auto p = engine_.store().load(store::kPermall)) perm = snapshot::sha256_of({p->view()});
        std::optional<ByteView> record = store::find_blob_tlv(blob, snapshot::kTagSnapshotRecord);
        auto verdict = cfg_.snapshot->check_restore(record, perm, plain->view());
        if (!verdict) {
            // Refused: forget the permanent blob of this restore too, so the
            // next CMD_INIT starts from the state on disk, which is untouched.
            (void)engine_.set_state(engine::BlobType::Permanent, {});
            restored_permanent_.reset();
            return verdict.error();
        }
        taint_at_init_ = verdict->taint;
    }
    auto r = engine_.set_state(type, plain->view());
    if (r) lock_released_ = false;
    return r;
}

Reply Dispatcher::get_state_blob(const GetStateBlobReq& req) {
    if (req.type < kBlobTypePermanent || req.type > kBlobTypeSavestate) {
        VTPM_LOG_ERROR("CMD_GET_STATEBLOB: unknown blob type %u", req.type);
        return Reply{encode_stateblob(rc::kBadParameter, 0, {}, 0)};
    }
    auto type = static_cast<engine::BlobType>(req.type);
    // With snapshot records, a read that continues at an offset gets the
    // same blob again, not a new record (and a new generation).
    const bool keep = type == engine::BlobType::Volatile && cfg_.snapshot;
    const bool cont = keep && req.offset > 0 && last_volatile_;
    auto blob = cont ? Result<store::MigrationBlob>(store::MigrationBlob{Bytes(last_volatile_->bytes.view().begin(),
                                                                               last_volatile_->bytes.view().end()),
                                                                         last_volatile_->state_flags})
                     : export_blob(type, (req.state_flags & store::kStateFlagDecrypted) != 0);
    if (blob && keep && !cont) last_volatile_ = KeptBlob{SecureBytes(blob->bytes), blob->state_flags};
    Reply reply;
    if (!blob) {
        if (blob.code() != rc::kRetry)
            VTPM_LOG_ERROR("CMD_GET_STATEBLOB type %u: %s", req.type, blob.error().message.c_str());
        reply.bytes = encode_stateblob(blob.code(), 0, {}, 0);
    } else {
        reply.bytes = encode_stateblob(rc::kSuccess, blob->state_flags, blob->bytes, req.offset);
    }
    // QEMU fetches permanent, volatile, then savestate: after the last one the
    // destination may take over shared storage.
    if (type == engine::BlobType::Savestate && cfg_.release_lock_outgoing) {
        engine_.store().unlock();
        lock_released_ = true;
        VTPM_LOG_INFO("released the state lock for the outgoing migration");
    }
    return reply;
}

Reply Dispatcher::set_state_blob(const SetStateBlobReq& req) {
    if (req.type < kBlobTypePermanent || req.type > kBlobTypeSavestate) {
        VTPM_LOG_ERROR("CMD_SET_STATEBLOB: unknown blob type %u", req.type);
        return result(rc::kBadParameter);
    }
    auto r = import_blob(static_cast<engine::BlobType>(req.type), req.state_flags, req.data);
    if (!r) return error(r.error(), "CMD_SET_STATEBLOB");
    VTPM_LOG_INFO("CMD_SET_STATEBLOB: accepted blob type %u (%zu bytes)", req.type, req.data.size());
    return result(rc::kSuccess);
}

Reply Dispatcher::get_info(const GetInfoReq& req) {
    auto info = engine_.info(static_cast<uint32_t>(req.flags));
    if (!info) return error(info.error(), "CMD_GET_INFO");
    if (req.offset >= info->size()) return result(rc::kBadParameter);
    return Reply{encode_info(*info, req.offset)};
}

}  // namespace vtpm::ctrl
