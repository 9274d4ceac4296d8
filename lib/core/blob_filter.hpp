// Blob filters: what the core applies to every state blob that leaves on
// GET_STATEBLOB and every one that arrives on SET_STATEBLOB, in the order
// they were added. The snapshot guard is one (a signed record over guest RAM
// travels in the volatile blob and is checked before libtpms gets the
// vPCRs); migration-session encryption will be another. Without filters the
// core moves blobs exactly as swtpm does.
#pragma once

#include <sys/types.h>

#include "engine/engine.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::core {

class BlobFilter {
public:
    virtual ~BlobFilter() = default;

    /// The process at the other end of the control connection (QEMU), 0 if unknown.
    virtual void set_peer_pid(pid_t pid) = 0;
    /// GET_STATEBLOB: `blob` is swtpm's migration form of `plain`, which the
    /// filter may extend (outside the part swtpm reads). The TPM is running.
    /// An error fails the GET_STATEBLOB.
    virtual Result<void> on_export(engine::Engine& e, engine::BlobType type, ByteView plain, Bytes& blob) = 0;
    /// SET_STATEBLOB: `blob` as received, `plain` what libtpms would get
    /// (both empty for an empty blob: "no such state"). The TPM is stopped.
    /// An error refuses the blob; the core then also drops every blob this
    /// restore set before, so the next CMD_INIT starts from the state on
    /// disk. So does a blob libtpms refuses after the filters took it.
    virtual Result<void> on_import(engine::Engine& e, engine::BlobType type, ByteView blob, ByteView plain) = 0;
    /// CMD_INIT is about to bring the TPM up: on the blobs of the restore in
    /// progress, or (no blob set since the last INIT) on the state it has.
    /// The filter may judge the restore as a whole here (a blob it needed
    /// never came). An error fails the INIT before the engine is touched; the
    /// core then drops every blob of the restore, as after a refused blob.
    virtual Result<void> before_init(engine::Engine&) { return {}; }
    /// CMD_INIT brought the TPM up. An error stops it again and fails the INIT.
    virtual Result<void> after_init(engine::Engine& e) = 0;
    /// The TPM is about to be powered off (CMD_STOP, CMD_SHUTDOWN, the
    /// process ending): what it holds in memory goes to the disk next,
    /// unless the filter discards it here.
    virtual void before_power_off(engine::Engine&) {}
    /// The restore in progress is over (refused, or the TPM was initialised).
    virtual void end_restore() = 0;
    /// A TPM command (the guest's, or the host's through the vendor channel)
    /// is about to run. An error refuses it: the core answers the engine's
    /// fatal response (TPM_FAILURE) and the engine never sees it; the filter
    /// logs. Called for every command, so it must be cheap.
    virtual Result<void> admit_tpm_command(engine::Engine&) { return {}; }
    /// CMD_STORE_VOLATILE is about to write the running TPM's volatile state
    /// (its vPCRs) to the disk, where the next CMD_INIT resumes from it. An
    /// error refuses it and nothing is written.
    virtual Result<void> admit_store_volatile(engine::Engine&) { return {}; }
};

}  // namespace vtpm::core
