// Where state hits the disk: crash-safe whole-file replacement, whole-file
// reads, and the fcntl lock swtpm also takes. Both state backends use these.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "util/bytes.hpp"
#include "util/fd.hpp"
#include "vtpm/result.hpp"

namespace vtpm {

/// Replace `path` with `data`: write a new temp file `tmp_prefix.XXXXXX`
/// (created exclusively, then given `mode`), fsync it, rename it over
/// `path`, fsync the directory. A crash leaves the old or the new content,
/// never a mix; the temp file is removed on failure. A failed directory
/// sync is an error: the new content may not survive a power cut.
Result<void> replace_file_durably(const std::string& tmp_prefix, const std::string& path, ByteView data,
                                  mode_t mode);

/// fsync the directory holding `path`, so a rename or unlink there survives
/// a power cut. An error when the directory cannot be opened or synced.
Result<void> sync_dir_of(const std::string& path);

/// Delete `path` and sync its directory: once this returns, the file does
/// not come back after a power cut. A missing file is fine unless
/// `must_exist`.
Result<void> remove_file_durably(const std::string& path, bool must_exist);

/// Read a whole regular file (never through a symlink). rc::kRetry when it
/// does not exist. With `set_mode`, the file is given that mode if it has
/// another one, as swtpm does with the state files it loads.
Result<Bytes> read_whole_file(const std::string& path, std::optional<mode_t> set_mode = std::nullopt);

/// Open `lock_path` and take a non-blocking fcntl write lock on it (the lock
/// swtpm takes on `.lock`). rc::kFail naming `what` when another process has it.
Result<UniqueFd> take_lock(const std::string& lock_path, const std::string& what, int open_flags);

}  // namespace vtpm
