// The bridge core, independent of any transport: a framed control message
// in, the reply bytes and what the front end must do out; a TPM command in,
// its response out. It holds swtpm's rules (which commands need a running
// or a stopped TPM), the state-lock policy of outgoing migrations, and the
// blob filters. Each control command is one entry of a table (handlers.cpp);
// a module adds its own vendor commands with add_command().
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "core/blob_filter.hpp"
#include "ctrl/framer.hpp"
#include "engine/engine.hpp"
#include "store/key.hpp"
#include "store/state_file.hpp"
#include "tpm/commands.hpp"

namespace vtpm::core {

/// Largest TPM command the data channel frames: libtpms' largest buffer
/// plus the TCG "send command" prefix. The current limit is the engine's
/// max_command_size(), which CMD_SET_BUFFERSIZE may lower.
inline constexpr size_t kMaxTpmCommand = 4096 + tpm::kSendCommandPrefix;

struct DispatcherConfig {
    std::optional<store::Key> migration_key;
    /// --migration release-lock-outgoing: drop the state lock once QEMU has
    /// fetched the last (savestate) blob, so the destination can take it.
    bool release_lock_outgoing = false;
    /// Advertise and serve CMD_LOCK_STORAGE (swtpm >= 0.8).
    bool lock_storage = true;
    /// Serve the CMD_VTPM_* commands and advertise their bits
    /// (--vtpm-vendor-ctrl); off, the control channel is swtpm's byte for byte.
    bool vendor_commands = false;
};

/// What the front end does after sending the reply.
enum class Action {
    None,
    Shutdown,     // CMD_SHUTDOWN: close everything and exit 0
    AdoptDataFd,  // CMD_SET_DATAFD accepted: the received fd is the data channel
    Close,        // the message could not be framed: close the control connection
};

struct Reply {
    Bytes bytes;
    Action action = Action::None;
};

/// Facts about the front end the core needs.
struct TransportState {
    int received_fd = -1;            // fd that came with this message (SCM_RIGHTS), or -1
    bool data_channel_busy = false;  // a data server/fd is configured or active
};

class Dispatcher;

/// The TPM state a control command needs. swtpm checks it before the
/// message's size, so a malformed message to a stopped TPM gets the
/// "not running" answer (TPM_BAD_ORDINAL), not TPM_BAD_PARAMETER.
enum class Needs : uint8_t { Any, Running, Stopped };

/// One control command: its capability bit (0: none), its handler and the
/// TPM state it needs, which the dispatcher checks before the handler runs.
struct Command {
    uint64_t capability = 0;
    std::function<Reply(Dispatcher&, const ctrl::Request&, const TransportState&)> handle;
    Needs needs = Needs::Any;
};

class Dispatcher {
public:
    Dispatcher(engine::Engine& engine, DispatcherConfig cfg);
    /// The engine outlives the dispatcher and powers off when it goes: the
    /// filters hear of it first (BlobFilter::before_power_off).
    ~Dispatcher();
    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    engine::Engine& engine() { return engine_; }
    const DispatcherConfig& config() const { return cfg_; }
    /// How the front ends frame control messages for this core.
    const ctrl::Framer& framer() const { return framer_; }

    /// Add (or replace) the handler of command `code`.
    void add_command(ctrl::Cmd code, Command cmd);
    /// Add a blob filter (not owned; it must outlive the dispatcher).
    void add_filter(BlobFilter& f);
    bool has_filters() const { return !filters_.empty(); }

    /// The capability mask this server reports.
    uint64_t capabilities() const;

    /// Handle one frame the front end's Framer produced (Message or Fatal).
    Reply handle(const ctrl::Frame& frame, const TransportState& ts);
    /// One complete message in one buffer (the C ABI, tests): decoded whole,
    /// so bytes beyond the command's body are an error.
    Reply handle_message(ByteView msg, const TransportState& ts);
    /// Handle one decoded request.
    Reply handle(uint32_t code, const ctrl::Request& req, const TransportState& ts);

    /// One TPM command from the data channel (raw or TCG-prefixed): the
    /// complete response. After the state lock went to a migration
    /// destination, a command first takes it back or is refused.
    Bytes tpm_command(ByteView command);
    /// The same, with the response written over `rsp` (capacity reused).
    void tpm_command(ByteView command, Bytes& rsp);
    /// The data channel's framing of a byte stream: when `buffered` starts
    /// with a complete command (tpm::command_frame_size), run it where it
    /// lies (libtpms may change those bytes), write the response over `rsp`
    /// and return the command's size, which the caller drops from the front
    /// of its buffer (and wipes); 0 while more bytes are needed. The socket
    /// front end frames with this, and so does the data-channel fuzz target.
    size_t take_tpm_command(std::span<uint8_t> buffered, Bytes& rsp);

    /// Whether the filters let a TPM command run now (BlobFilter::admit_tpm_command).
    bool tpm_commands_admitted();

    /// True after the state lock was released for an outgoing migration and
    /// not yet taken back.
    bool lock_released() const { return lock_released_; }
    /// Re-take the state lock (LOCK_STORAGE, CMD_INIT, a TPM command).
    Result<void> relock(uint32_t retries);

    /// A state blob in swtpm's migration format, as GET_STATEBLOB hands it out
    /// (TPM running), passed through the filters. `decrypted`: no state-key
    /// encryption.
    Result<store::MigrationBlob> export_blob(engine::BlobType type, bool decrypted);
    /// Take a blob as SET_STATEBLOB does (TPM stopped), after the filters
    /// accepted it; empty clears it.
    Result<void> import_blob(engine::BlobType type, uint32_t state_flags, ByteView blob);
    /// CMD_INIT between the filters' before_init and after_init.
    Result<void> init(bool delete_volatile);
    /// CMD_STOP / CMD_SHUTDOWN: the filters' before_power_off, then the
    /// engine's stop.
    void stop();
    /// CMD_STORE_VOLATILE, once the filters admit it.
    Result<void> store_volatile();

    /// The process on the other end of the control connection (0: unknown).
    void set_peer_pid(pid_t pid);

    /// A control connection begins or ends. Refused control messages are
    /// logged one line each, at most kRefusalLinesPerConnection per
    /// connection: no input can flood the log. Past that one line says so,
    /// and end_connection() counts what was left out.
    static constexpr unsigned kRefusalLinesPerConnection = 16;
    void begin_connection();
    void end_connection();

    /// GET_STATEBLOB with swtpm's offset reads: a read that continues at an
    /// offset gets the same volatile blob again when filters are active (a
    /// filter's record is made once per save).
    Reply get_state_blob(const ctrl::GetStateBlobReq& req);

private:
    // The state lock and the filters allow a TPM command; if not, `rsp` is
    // the fatal answer.
    bool may_run_tpm_command(Bytes& rsp);
    /// Whether the TPM is in the state a command needs.
    bool state_allows(Needs needs) const;
    /// A restore refused (by a filter or by libtpms): every blob it set is
    /// dropped, so the next CMD_INIT starts from the state on disk.
    void abandon_restore();
    engine::Engine& engine_;
    DispatcherConfig cfg_;
    ctrl::Framer framer_;
    std::map<uint32_t, Command> commands_;
    std::vector<BlobFilter*> filters_;
    bool lock_released_ = false;
    // The last volatile blob handed out through filters, for reads that
    // continue at an offset (may be plain state: wiped when replaced).
    struct KeptBlob {
        SecureBytes bytes;
        uint32_t state_flags = 0;
    };
    std::optional<KeptBlob> last_volatile_;
};

/// Replies every handler builds.
Reply result_reply(uint32_t rc);
/// True while the current control connection's refusals may still be
/// logged (Dispatcher::begin_connection); the first refusal past the budget
/// logs that the rest are only counted.
bool may_log_refusal();
/// Log `what: message` and answer the error's code.
Reply error_reply(const Error& e, std::string_view what);

/// The table of swtpm's own commands (and CMD_VTPM_TPM_COMMAND).
void add_swtpm_commands(Dispatcher& d);

}  // namespace vtpm::core
