// Control-channel dispatcher: one decoded message in, the response bytes and
// what the transport must do out. Holds swtpm's rules about which commands
// need a running or stopped TPM; knows nothing about sockets.
#pragma once

#include <optional>

#include "ctrl/codec.hpp"
#include "engine/engine.hpp"
#include "snapshot/hooks.hpp"
#include "store/key.hpp"
#include "store/state_file.hpp"

namespace vtpm::ctrl {

struct DispatcherConfig {
    std::optional<store::Key> migration_key;
    /// --migration release-lock-outgoing: drop the state lock once QEMU has
    /// fetched the last (savestate) blob, so the destination can take it.
    bool release_lock_outgoing = false;
    /// Advertise and serve CMD_LOCK_STORAGE (swtpm >= 0.8).
    bool lock_storage = true;
    /// Serve CMD_VTPM_TPM_COMMAND and advertise its bit (--vtpm-vendor-ctrl).
    bool vendor_tpm_command = false;
    /// Snapshot records on save and their checks on restore (not owned);
    /// null: blobs pass as with swtpm.
    snapshot::SnapshotHooks* snapshot = nullptr;
    /// PTM_CAP_SEND_COMMAND_HEADER etc. follow the TPM version.
};

/// What the transport does after sending the reply.
enum class Action {
    None,
    Shutdown,     // CMD_SHUTDOWN: close everything and exit 0
    AdoptDataFd,  // CMD_SET_DATAFD accepted: the received fd is the data channel
};

struct Reply {
    Bytes bytes;
    Action action = Action::None;
};

/// Facts about the transport the dispatcher needs.
struct TransportState {
    int received_fd = -1;            // fd that came with this message (SCM_RIGHTS), or -1
    bool data_channel_busy = false;  // a data server/fd is configured or active
};

class Dispatcher {
public:
    Dispatcher(engine::Engine& engine, DispatcherConfig cfg);

    /// The capability mask this server reports.
    uint64_t capabilities() const;
    /// CMD_VTPM_TPM_COMMAND is served (the transport frames it).
    bool vendor_enabled() const { return cfg_.vendor_tpm_command; }

    /// Handle one complete message (4-byte code + body).
    Reply handle(ByteView msg, const TransportState& ts);

    /// True after the state lock was released for an outgoing migration and
    /// not yet taken back; TPM commands must re-take it first.
    bool lock_released() const { return lock_released_; }
    /// Re-take the state lock (LOCK_STORAGE or before a TPM command).
    Result<void> relock(uint32_t retries);

    /// A state blob in swtpm's migration format, as GET_STATEBLOB hands it out
    /// (TPM running). `decrypted`: no state-key encryption. With snapshot
    /// hooks the volatile blob carries the snapshot record.
    Result<store::MigrationBlob> export_blob(engine::BlobType type, bool decrypted);
    /// Take a blob as SET_STATEBLOB does (TPM stopped); empty clears it. With
    /// snapshot hooks a volatile blob is checked before libtpms gets it.
    Result<void> import_blob(engine::BlobType type, uint32_t state_flags, ByteView blob);

    /// The process on the other end of the control connection (0: unknown).
    void set_peer_pid(pid_t pid);

private:
    Reply get_state_blob(const GetStateBlobReq& req);
    Reply set_state_blob(const SetStateBlobReq& req);
    Reply get_info(const GetInfoReq& req);

    Result<void> init(bool delete_volatile);
    /// The snapshot record for the volatile state `volatile_plain` (now).
    Result<std::optional<Bytes>> snapshot_record(ByteView volatile_plain);

    engine::Engine& engine_;
    DispatcherConfig cfg_;
    bool lock_released_ = false;
    // Restore in progress: the permanent blob set so far, and whether the
    // vPCRs must be tainted once CMD_INIT brings the TPM up.
    std::optional<snapshot::Digest> restored_permanent_;
    bool taint_at_init_ = false;
    // The last volatile blob handed out with a record, for reads that
    // continue at an offset (may be plain state: wiped when replaced).
    struct KeptBlob {
        SecureBytes bytes;
        uint32_t state_flags = 0;
    };
    std::optional<KeptBlob> last_volatile_;
};

}  // namespace vtpm::ctrl
