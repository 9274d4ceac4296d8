// Where vTPM state lives. An interface so the directory backend (swtpm's
// dir://) and others (file://) sit behind one seam; the engine's NV callbacks
// talk only to this.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "store/key.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::store {

/// libtpms blob names (tpm_nvfilename.h).
inline constexpr std::string_view kPermall = "permall";
inline constexpr std::string_view kVolatile = "volatilestate";
inline constexpr std::string_view kSavestate = "savestate";

struct StateEntry {
    std::string name;  // permall, volatilestate, savestate
    uint64_t size = 0;
};

class StateStore {
public:
    virtual ~StateStore() = default;

    /// Take the storage lock (swtpm's fcntl write lock on `.lock`). Idempotent.
    /// rc::kFail with a message naming the holder situation when taken.
    virtual Result<void> lock() = 0;
    /// Release the storage lock (release-lock-outgoing).
    virtual void unlock() = 0;
    virtual bool locked() const = 0;

    /// Plain libtpms blob `name`. Error rc::kRetry when it does not exist.
    virtual Result<SecureBytes> load(std::string_view name) = 0;
    /// Raw stored bytes of `name` (header+TLV, possibly encrypted).
    virtual Result<Bytes> load_raw(std::string_view name) = 0;
    /// Atomically replace `name` with `plain` (encrypted with the state key if
    /// any). Requires the lock (rc::kFail otherwise), as does remove().
    virtual Result<void> store(std::string_view name, ByteView plain) = 0;
    /// store(), then the state file itself up to date (no journal left
    /// holding it): for a whole new state that other programs read next
    /// (vtpm-setup). On failure the state files are as they were.
    virtual Result<void> replace(std::string_view name, ByteView plain) {
        if (auto r = store(name, plain); !r) return r;
        return checkpoint();
    }
    /// Delete `name`; a missing one is fine unless must_exist.
    virtual Result<void> remove(std::string_view name, bool must_exist) = 0;
    /// Existing blobs in the order permall, volatilestate, savestate.
    virtual Result<std::vector<StateEntry>> list() = 0;

    virtual const Key* state_key() const = 0;

    /// Whether acknowledged writes wait in a journal to be copied into the
    /// state files (they are durable either way).
    virtual bool needs_checkpoint() const { return false; }
    /// Copy what the journal holds into the state files, durably, so other
    /// programs (Debian's swtpm, backups) read it there. Off the command
    /// path: the bridge runs it when idle and before it lets go of the state.
    virtual Result<void> checkpoint() { return {}; }
};

/// swtpm's dir:// backend: files `tpm2-00.<name>` (TPM 2) or `tpm-00.<name>`
/// (TPM 1.2) in `dir`, temp files `TMP2-00.<name>`/`TMP-00.<name>`, written
/// with mode `file_mode`, each write: temp file, fsync, rename, fsync dir.
/// While the lock is held, the permanent state goes to the journal
/// `tpm2-00.permall.journal` first (one fdatasync per write) and reaches
/// `tpm2-00.permall` at checkpoint(), unlock() and destruction; after a
/// crash the next opening reads the journal. Loading fchmods existing files
/// to file_mode as swtpm does.
std::unique_ptr<StateStore> make_dir_store(std::string dir, bool tpm2, mode_t file_mode,
                                           std::optional<Key> state_key);

/// swtpm's file:// backend: all blobs in one file (regular files only).
std::unique_ptr<StateStore> make_linear_store(std::string path, mode_t file_mode, std::optional<Key> state_key);

/// Blobs kept in memory only (plain; no key, no lock): manufacturing works
/// in one and writes the result into the real store at the end.
std::unique_ptr<StateStore> make_memory_store();

/// Open a backend from a URI: `dir://PATH` or `file://PATH`.
Result<std::unique_ptr<StateStore>> open_store(std::string_view uri, bool tpm2, mode_t file_mode,
                                               std::optional<Key> state_key);

/// swtpm's --print-states JSON (no trailing newline).
std::string format_print_states(const std::vector<StateEntry>& entries);

}  // namespace vtpm::store
