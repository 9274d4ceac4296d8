// The libtpms instance behind a small class. libtpms is a process-wide
// singleton, so at most one Engine exists per process; its NV callbacks go to
// the StateStore it owns.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/state_store.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::engine {

enum class TpmVersion { V1_2, V2 };

/// PTM blob types of the control channel (1 permanent, 2 volatile, 3 savestate).
enum class BlobType : uint32_t { Permanent = 1, Volatile = 2, Savestate = 3 };
/// The blob type a control message names, nullopt when there is none.
inline std::optional<BlobType> blob_type(uint32_t wire) {
    if (wire < 1 || wire > 3) return std::nullopt;
    return static_cast<BlobType>(wire);
}

struct EngineConfig {
    TpmVersion version = TpmVersion::V2;
    /// Send TPM2_Shutdown(SU_STATE) (fallback SU_CLEAR) before terminating
    /// libtpms in INIT/STOP/SHUTDOWN when the last command was not
    /// TPM2_Shutdown, as swtpm >= 0.8 does: an abrupt reset otherwise counts
    /// towards dictionary-attack lockout.
    bool auto_shutdown = true;
    /// At power-off (CMD_STOP, CMD_SHUTDOWN, the process ending; not at a
    /// reset by CMD_INIT) record TPM2_Shutdown(SU_CLEAR), even after the
    /// guest's own SU_STATE and with auto_shutdown off: a TPM2_Startup(SU_STATE)
    /// in the next process then cannot bring the vPCRs back from the disk.
    /// Snapshot verification sets it, where vPCRs come back only through a
    /// checked restore.
    bool clear_at_power_off = false;
    bool reject_locality_4 = false;
    bool allow_set_locality = false;
};

/// The plain libtpms blob for GET_STATEBLOB, or rc::kRetry when absent.
struct PlainBlob {
    SecureBytes data;
};

class Engine {
public:
    /// Create the process's engine. Fails if one exists or libtpms refuses
    /// the version.
    static Result<std::unique_ptr<Engine>> create(EngineConfig cfg,
                                                  std::unique_ptr<store::StateStore> store);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    TpmVersion version() const { return cfg_.version; }
    bool tpm2() const { return cfg_.version == TpmVersion::V2; }
    bool running() const { return running_; }
    store::StateStore& store() { return *store_; }
    const EngineConfig& config() const { return cfg_; }

    /// CMD_INIT: (auto-shutdown,) terminate, power on from cached blobs or
    /// files; with delete_volatile remove the volatile-state file afterwards.
    Result<void> init(bool delete_volatile);
    /// CMD_STOP / CMD_SHUTDOWN: (auto-shutdown,) power off. Idempotent.
    /// When an automatic TPM2_Shutdown is due, the TPM stops answering at
    /// once and the shutdown and power-off run at the next operation that
    /// needs libtpms (init, set_state, ...) or at destruction.
    void stop();
    /// Keep the TPM's state writes (libtpms' NVRAM stores and deletes,
    /// CMD_STORE_VOLATILE) in memory instead of the store, served back to
    /// its loads: a restore awaiting its final verification must not reach
    /// the disk yet. Idempotent.
    void hold_writes();
    /// Write what was held, in order, and stop holding (also done by stop()).
    Result<void> release_writes();
    /// Forget what was held and stop holding: the disk keeps its state.
    void discard_writes();
    bool holding_writes() const { return held_.has_value(); }
    /// Write what stop()'s automatic TPM2_Shutdown left pending (see
    /// deferred_). Done by init() and the destructor; call it before the
    /// store's lock is given up.
    Result<void> flush_deferred();
    /// The store as the TPM sees it (held writes first); libtpms' callbacks.
    Result<SecureBytes> load_state(const std::string& name);
    Result<void> store_state(const std::string& name, ByteView plain);
    Result<void> remove_state(const std::string& name, bool must_exist);
    /// How many stores and deletes libtpms has made so far: the bridge
    /// checkpoints a journal once this stops moving.
    uint64_t tpm_writes() const { return tpm_writes_; }

    /// Until the next init(), power-off sends no automatic TPM2_Shutdown, so
    /// the state on disk stays as it is (a restore refused after CMD_INIT,
    /// whose TPM must keep answering QEMU's control commands).
    void forgo_auto_shutdown() { forgo_auto_shutdown_ = true; }

    /// Execute one command of the TPM's user — the guest on the data
    /// channel, or the tool that owns an offline engine — raw or with the
    /// TCG "send command" prefix, and return the complete response. When the
    /// TPM is not running the answer is the version's 10-byte fatal error.
    /// Its code is what auto-shutdown looks at.
    Bytes command(ByteView command);
    /// The same, with the response written over `rsp`, whose capacity is
    /// reused: the data channel's hot path allocates nothing per command.
    void command(ByteView command, Bytes& rsp);
    /// The same for a command in the caller's buffer, which libtpms may
    /// change (it decrypts session-encrypted parameters in place): no copy.
    /// The caller wipes those bytes when it is done with them.
    void command_in_place(std::span<uint8_t> command, Bytes& rsp);

    /// The current locality and CMD_SET_LOCALITY semantics.
    uint8_t locality() const { return locality_; }
    Result<void> set_locality(uint8_t loc);

    Result<bool> tpm_established() const;
    Result<void> reset_tpm_established(uint8_t loc);
    Result<void> hash_start();
    Result<void> hash_data(ByteView data);
    Result<void> hash_end();
    Result<void> cancel();
    /// CMD_STORE_VOLATILE: write the volatile state file.
    Result<void> store_volatile();

    /// CMD_SET_BUFFERSIZE: 0 queries; otherwise only while stopped.
    struct BufferSize { uint32_t size, min, max; };
    Result<BufferSize> buffer_size(uint32_t wanted);
    /// The largest TPM command the TPM takes now: libtpms' I/O buffer as
    /// CMD_SET_BUFFERSIZE last set it (QEMU's CRB device sets 3968). A command
    /// announcing more never arrives whole: QEMU sends at most this much.
    size_t max_command_size() const { return max_command_; }
    /// TPMLIB_GetInfo JSON, rc::kSize if libtpms gives nothing.
    Result<std::string> info(uint32_t flags) const;

    /// Plain blob of a type as it stands now (requires running). Volatile is
    /// serialised from the live TPM without touching the disk.
    Result<PlainBlob> get_state(BlobType type);
    /// Hand a plain blob to libtpms (requires stopped); consumed by the next
    /// init(). An empty blob clears the cached one.
    Result<void> set_state(BlobType type, ByteView plain);

    /// Run TPM2_Startup / TPM_Startup of the given type at program start
    /// (--flags startup-*). type: 0 clear, 1 state, 2 deactivated (1.2 only).
    Result<void> startup(int type);

    /// A command of the host's between the guest's (snapshot records, the
    /// identity tools through CMD_VTPM_TPM_COMMAND): raw, and the guest's
    /// last command stays what auto-shutdown looks at.
    Bytes host_command(ByteView command);

    /// A bare response header with the code for this TPM version: what the
    /// engine, and the core for a command it refuses, answers instead of libtpms.
    Bytes fatal_response(uint32_t rc_tpm2, uint32_t rc_tpm12) const;

    /// Code of the last command processed (for auto-shutdown).
    uint32_t last_command() const { return last_cc_; }

    /// Only create() can build the token, so only create() constructs engines.
    class Token {
        friend class Engine;
        Token() = default;
    };
    Engine(Token, EngineConfig cfg, std::unique_ptr<store::StateStore> store);

private:
    void auto_shutdown();
    // The power-off's TPM2_Shutdown(SU_CLEAR) of clear_at_power_off.
    void shutdown_clear();
    bool will_auto_shutdown() const;
    /// Orderly shutdown (deferred writes), TPMLIB_Terminate, held writes out.
    void power_off();
    /// The power-off a CMD_STOP left pending, before anything else touches
    /// libtpms.
    void finish_power_off();
    Bytes execute(ByteView command);
    void execute(ByteView command, Bytes& rsp);
    // TPMLIB_Process on a mutable command; the response over `rsp`.
    void process(std::span<uint8_t> command, Bytes& rsp);
    void process_failed(uint32_t result, Bytes& rsp);
    // command() for the TCG-prefixed form, SetLocality and the refusals.
    void command_other(ByteView command, Bytes& rsp);

    EngineConfig cfg_;
    std::unique_ptr<store::StateStore> store_;
    bool running_ = false;
    uint8_t locality_ = 0;
    size_t max_command_ = 4096;
    uint32_t last_cc_ = 0;
    uint64_t tpm_writes_ = 0;
    bool forgo_auto_shutdown_ = false;
    using Writes = std::vector<std::pair<std::string, std::optional<SecureBytes>>>;
    // Held state writes, in the order made (nullopt: a delete).
    std::optional<Writes> held_;
    // The state stop()'s automatic TPM2_Shutdown wrote. Nobody was told it
    // is on disk, and QEMU's restore (STOP, SET_STATEBLOB, INIT) replaces
    // it at once: it is written at the next init(), flush_deferred() or
    // destruction, and dropped when a SET_STATEBLOB supersedes it. A crash
    // in between loses only the orderly-shutdown mark, as swtpm 0.7.1
    // (which sends no TPM2_Shutdown at all) always does.
    Writes deferred_;
    bool deferring_ = false;
    // CMD_STOP stopped the TPM (running_ is false) but libtpms still holds
    // it: the orderly shutdown and TPMLIB_Terminate wait for finish_power_off().
    bool power_off_pending_ = false;
    // set_state(Permanent, {}) left libtpms an *empty* permanent blob (not
    // "none": the next init manufactures a new TPM), which it dereferences
    // when it checks a volatile blob against it.
    bool permanent_cleared_ = false;
    // libtpms takes the command in a mutable buffer: this copy of it, kept
    // for its capacity and wiped after every command.
    SecureBytes cmdbuf_;
    unsigned char* respbuf_ = nullptr;  // libtpms-owned (malloc'ed) response buffer
    uint32_t respbuf_size_ = 0;
};

}  // namespace vtpm::engine
