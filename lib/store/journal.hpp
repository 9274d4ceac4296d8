// The permanent-state journal file (format: journal_format.hpp): where an
// NV write becomes durable with one fdatasync. The directory store owns one
// per state directory while it holds the lock.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "store/journal_format.hpp"
#include "util/bytes.hpp"
#include "util/fd.hpp"
#include "vtpm/result.hpp"

namespace vtpm::store {

/// What a journal file on disk holds, with its own copy of the newest record.
struct JournalContents {
    journal::Header header;
    std::optional<uint64_t> latest_seq;
    SecureBytes latest_data;  // the state file bytes of the newest record
};

/// Read and parse the journal at `path`. rc::kRetry when there is none;
/// rc::kFail naming the file when its header is damaged.
Result<JournalContents> read_journal(const std::string& path);

class Journal {
public:
    /// Open an existing journal for appending after `contents` (read_journal).
    static Result<Journal> open(const std::string& path, const JournalContents& contents);
    /// Create a new journal atomically and durably (temp file, fsync, rename,
    /// directory fsync), replacing any old one; with `first`, holding it as
    /// its first record (durable when this returns).
    static Result<Journal> create(const std::string& path, std::optional<Digest> base, size_t slot_size, mode_t mode,
                                  std::optional<ByteView> first = std::nullopt);

    const journal::Header& header() const { return header_; }
    /// Whether a record of `data_size` bytes fits a slot.
    bool fits(size_t data_size) const;
    /// Append one record and fdatasync: when this returns success the data
    /// survives a crash. rc::kSize when it does not fit (nothing written).
    Result<void> append(ByteView data);
    /// Start a new epoch for the state file with digest `base` (nullopt: no
    /// file): earlier records stop counting. One header write and fdatasync.
    Result<void> reset(std::optional<Digest> base);
    /// Records appended in this epoch.
    bool has_records() const { return next_seq_ > first_seq_; }

private:
    Journal(UniqueFd fd, std::string path, journal::Header h, uint64_t next_seq)
        : fd_(std::move(fd)), path_(std::move(path)), header_(h), next_seq_(next_seq), first_seq_(next_seq) {}
    Result<void> write_at(ByteView bytes, uint64_t offset);

    UniqueFd fd_;
    std::string path_;
    journal::Header header_;
    uint64_t next_seq_ = 1;
    uint64_t first_seq_ = 1;
};

}  // namespace vtpm::store
