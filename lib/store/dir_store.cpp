// swtpm's dir:// backend: where state hits the disk. Every write is atomic
// and durable: the permanent state by one fdatasync of a journal record
// (store/journal.hpp) copied into the file at checkpoints, the others as
// temp file, fsync, rename, fsync of the directory. A crash leaves the old
// or the new state, never a torn one.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "util/durable_file.hpp"
#include "util/sha256.hpp"
#include "store/state_file.hpp"
#include "store/state_store.hpp"
#include "util/fd.hpp"
#include "util/log.hpp"
#include "store/journal.hpp"
#include "util/hot.hpp"

namespace vtpm::store {
namespace {

std::string errstr() { return std::strerror(errno); }

class DirStore final : public StateStore {
public:
    DirStore(std::string dir, bool tpm2, mode_t mode, std::optional<Key> key)
        : dir_(std::move(dir)), tpm2_(tpm2), mode_(mode), key_(std::move(key)) {
        while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
    }

    ~DirStore() override {
        if (lock_fd_) unlock();
    }

    Result<void> lock() override {
        if (lock_fd_) return {};
        // The same fcntl lock swtpm takes, so the two exclude each other.
        auto fd = take_lock(dir_ + "/.lock", "the state directory " + dir_, O_TRUNC);
        if (!fd) return fd.error();
        lock_fd_ = std::move(*fd);
        if (auto r = open_journal(); !r) {
            lock_fd_.reset();
            return r;
        }
        return {};
    }

    void unlock() override {
        // Whoever takes the state next (Debian's swtpm, a migration
        // destination on shared storage) reads the state file.
        if (auto r = checkpoint(); !r) VTPM_LOG_ERROR("%s", r.error().message.c_str());
        journal_.reset();
        journaled_.reset();
        recovered_unused_ = false;
        file_digest_.reset();
        lock_fd_.reset();
        // Someone else may write the files now: forget what we knew.
        digests_ = {};
    }
    bool locked() const override { return lock_fd_.valid(); }

    Result<Bytes> load_raw(std::string_view name) override {
        if (name == kPermall) {
            if (journaled_) return Bytes(journaled_->data(), journaled_->data() + journaled_->size());
            if (!lock_fd_) return permall_from_disk();
        }
        return read_whole_file(file_path("tpm", name), mode_);
    }

    Result<SecureBytes> load(std::string_view name) override {
        auto raw = load_raw(name);
        if (!raw) return raw.error();
        auto plain = decode_state_file(*raw, key_ ? &*key_ : nullptr);
        wipe(*raw);
        if (!plain)
            return make_error(plain.code(), file_path("tpm", name) + ": " + plain.error().message);
        if (name == kPermall) recovered_unused_ = false;  // the TPM runs on it now
        if (Digest* known = known_digest(name)) *known = digest(*plain);
        return plain;
    }

    Result<void> store(std::string_view name, ByteView plain) override {
        if (auto l = require_lock(name); !l) return l;
        // libtpms stores the whole blob after every NV change and again at
        // start-up; a byte-identical blob needs no write (and no fsync). We
        // hold the lock, so the file is what we last loaded or wrote.
        Digest d = digest(plain);
        Digest* known = known_digest(name);
        if (known && *known == d && ((name == kPermall && journaled_) || exists(name))) return {};
        auto file = encode_state_file(plain, key_ ? &*key_ : nullptr);
        if (!file) return file.error();
        Result<void> r = name == kPermall ? store_permall(*file)
                                          : replace_file_durably(file_path("TMP", name), file_path("tpm", name), *file, mode_);
        wipe(*file);
        if (known) *known = r ? d : Digest{};
        return r;
    }

    Result<void> replace(std::string_view name, ByteView plain) override {
        if (name != kPermall) return store(name, plain);
        if (auto l = require_lock(name); !l) return l;
        auto file = encode_state_file(plain, key_ ? &*key_ : nullptr);
        if (!file) return file.error();
        // The file directly, never the journal: a write that fails leaves
        // the old state in charge for every reader, swtpm and ours.
        auto r = write_permall_file(*file);
        if (r) digests_[0] = digest(plain);
        wipe(*file);
        return r;
    }

    Result<void> remove(std::string_view name, bool must_exist) override {
        if (auto l = require_lock(name); !l) return l;
        if (Digest* known = known_digest(name)) *known = Digest{};
        if (name == kPermall) {
            // A crash half-way must leave the newest state or none, never
            // an older one: make the file current, end the records' epoch,
            // then delete the file.
            recovered_unused_ = false;
            if (auto c = checkpoint(); !c) return c;
            if (journal_) {
                if (auto r = journal_->reset(file_digest_); !r) return r;
            }
            auto r = remove_file_durably(file_path("tpm", name), must_exist);
            if (!r) return r;
            file_digest_.reset();
            restart_journal(std::nullopt);
            return {};
        }
        // Durable: a used volatile state that came back after a power cut
        // would be resumed from again.
        return remove_file_durably(file_path("tpm", name), must_exist);
    }

    Result<std::vector<StateEntry>> list() override {
        std::vector<StateEntry> out;
        for (std::string_view n : {kPermall, kVolatile, kSavestate}) {
            if (n == kPermall && journaled_) {
                out.push_back({std::string(n), journaled_->size()});
                continue;
            }
            std::string path = file_path("tpm", n);
            struct stat st{};
            if (::stat(path.c_str(), &st) < 0) {
                if (errno == ENOENT) continue;
                return make_error(rc::kFail, "could not stat " + path + ": " + errstr());
            }
            if (S_ISREG(st.st_mode)) out.push_back({std::string(n), static_cast<uint64_t>(st.st_size)});
        }
        return out;
    }

    const Key* state_key() const override { return key_ ? &*key_ : nullptr; }

    VTPM_HOT bool needs_checkpoint() const override { return journaled_.has_value() && !recovered_unused_; }

    Result<void> checkpoint() override {
        // A record a crash left is copied into the file once the TPM has
        // run on it: a start refused before that (a wrong key, a state
        // libtpms rejects) or --print-states leaves the directory as it was.
        if (!journaled_ || recovered_unused_) return {};
        const std::string path = file_path("tpm", kPermall);
        if (auto r = replace_file_durably(file_path("TMP", kPermall), path, journaled_->view(), mode_); !r)
            return make_error(r.code(), "checkpoint of the journal into " + path + ": " + r.error().message);
        file_digest_ = sha256(journaled_->view());
        journaled_.reset();
        // The file holds the newest record now; a crash before the reset
        // below is recognised at the next opening (file = newest record).
        restart_journal(file_digest_);
        return {};
    }

private:
    static Digest digest(ByteView data) { return sha256(data); }
    // The digest of the plain blob currently in the file, for the blobs
    // libtpms stores; all-zero when unknown.
    Digest* known_digest(std::string_view name) {
        if (name == kPermall) return &digests_[0];
        if (name == kVolatile) return &digests_[1];
        if (name == kSavestate) return &digests_[2];
        return nullptr;
    }

    bool exists(std::string_view name) const { return ::access(file_path("tpm", name).c_str(), F_OK) == 0; }

    // Writing without the lock could clobber state another process (a
    // migration destination on shared storage) owns now.
    Result<void> require_lock(std::string_view name) const {
        if (lock_fd_) return {};
        return make_error(rc::kFail, "refusing to change " + file_path("tpm", name) +
                                         ": the state lock is not held");
    }

    // "tpm2-00.permall" / "TMP2-00.permall"; TPM 1.2 without the "2".
    std::string file_path(std::string_view prefix, std::string_view name) const {
        std::string p = dir_;
        p += '/';
        p += prefix;
        if (tpm2_) p += '2';
        p += "-00.";
        p += name;
        return p;
    }
    std::string journal_path() const { return file_path("tpm", kPermall) + ".journal"; }

    // Digest of the state file's bytes; nullopt when there is none.
    Result<std::optional<Digest>> permall_file_digest() const {
        auto raw = read_whole_file(file_path("tpm", kPermall));
        if (!raw) {
            if (raw.code() == rc::kRetry) return std::optional<Digest>{};
            return raw.error();
        }
        Digest d = sha256(*raw);
        wipe(*raw);
        return std::optional<Digest>{d};
    }

    // What the journal says about the state file: the newer bytes to use
    // instead of it, or nothing. Records count only for the file they were
    // written against (the epoch's base): a file someone else wrote after a
    // crash of ours wins over our records.
    enum class Verdict { None, Newer, FileIsNewest, Foreign };
    struct Resolved {
        Verdict verdict = Verdict::None;
        std::optional<JournalContents> contents;  // none: no usable journal
        std::optional<Digest> file_digest;
    };
    Result<Resolved> resolve() const {
        Resolved out;
        auto fd = permall_file_digest();
        if (!fd) return fd.error();
        out.file_digest = *fd;
        auto c = read_journal(journal_path());
        if (!c) {
            if (c.code() == rc::kRetry) return out;
            // Only a torn header rewrite damages a header, and the file was
            // made current before every rewrite: the file is the state.
            VTPM_LOG_WARN("%s; using %s as it is", c.error().message.c_str(), file_path("tpm", kPermall).c_str());
            return out;
        }
        out.contents = std::move(*c);
        if (!out.contents->latest_seq) return out;
        const Digest newest = sha256(out.contents->latest_data.view());
        if (out.file_digest && *out.file_digest == newest) out.verdict = Verdict::FileIsNewest;
        else if (out.file_digest == out.contents->header.base) out.verdict = Verdict::Newer;
        else out.verdict = Verdict::Foreign;
        return out;
    }

    // Without the lock (a reader beside no bridge): the state file, or the
    // newer journal record a crash left behind.
    Result<Bytes> permall_from_disk() const {
        auto res = resolve();
        if (!res) return res.error();
        if (res->verdict == Verdict::Newer) {
            const SecureBytes& d = res->contents->latest_data;
            return Bytes(d.data(), d.data() + d.size());
        }
        return read_whole_file(file_path("tpm", kPermall), mode_);
    }

    // At lock(): take over the journal a previous run left, without
    // writing anything (opening state that is then refused, or only read,
    // must leave the directory as it was). Records pending after a crash
    // stay pending until the next checkpoint; a journal that does not fit
    // the file as it is now is replaced by the first write.
    Result<void> open_journal() {
        auto res = resolve();
        if (!res) return res.error();
        file_digest_ = res->file_digest;
        if (!res->contents) return {};
        switch (res->verdict) {
        case Verdict::Newer:
            VTPM_LOG_INFO("%s: the journal holds state newer than the file (the last run ended abruptly); it is used",
                          dir_.c_str());
            journaled_ = std::move(res->contents->latest_data);
            recovered_unused_ = true;
            break;
        case Verdict::Foreign:
            VTPM_LOG_WARN("%s: the state file changed after the journal was written (another program wrote it); "
                          "the journal is not used",
                          dir_.c_str());
            return {};
        case Verdict::FileIsNewest:
            return {};
        case Verdict::None:
            // New records must name the file as it is now.
            if (res->contents->header.base != res->file_digest) return {};
            break;
        }
        auto j = Journal::open(journal_path(), *res->contents);
        if (!j) return j.error();
        journal_ = std::move(*j);
        return {};
    }

    // A new epoch for the file with digest `base`. If that cannot be
    // written, the journal is dropped and rebuilt (atomically) by the next
    // write: appending to an epoch whose base is stale would lose records.
    void restart_journal(std::optional<Digest> base) {
        if (!journal_) return;
        if (auto r = journal_->reset(base); !r) {
            VTPM_LOG_WARN("%s; it is rebuilt at the next write", r.error().message.c_str());
            journal_.reset();
        }
    }

    // The permanent state written to its file, not the journal; the journal
    // starts an epoch naming the new file: records of an older file (or of
    // none, since a deletion) stop counting, and a crash before this leaves
    // a journal whose base is not the file, which is ignored.
    Result<void> write_permall_file(ByteView file) {
        auto r = replace_file_durably(file_path("TMP", kPermall), file_path("tpm", kPermall), file, mode_);
        if (!r) return r;
        file_digest_ = sha256(file);
        journaled_.reset();
        recovered_unused_ = false;
        restart_journal(file_digest_);
        return {};
    }

    Result<void> store_permall(ByteView file) {
        if (!file_digest_ && !journaled_) {
            // No state file yet: make it, as swtpm does, so the directory
            // shows a TPM state to whoever looks (libvirt, swtpm_setup).
            return write_permall_file(file);
        }
        if (!journal_ || !journal_->fits(file.size())) {
            // First write here, a journal that does not fit the file as it
            // is, or a state grown past the slots: a new journal holding
            // this write, for the file as it is on disk (two flushes, once).
            journal_.reset();
            auto j = Journal::create(journal_path(), file_digest_, journal::slot_size_for(file.size()), mode_, file);
            if (!j) return j.error();
            journal_ = std::move(*j);
        } else if (auto r = journal_->append(file); !r) {
            return r;
        }
        journaled_ = SecureBytes(file);
        recovered_unused_ = false;
        return {};
    }

    std::string dir_;
    bool tpm2_;
    mode_t mode_;
    std::optional<Key> key_;
    UniqueFd lock_fd_;
    std::array<Digest, 3> digests_{};
    std::optional<Journal> journal_;     // open while locked, once it exists
    std::optional<SecureBytes> journaled_;  // permanent state newer than the file
    bool recovered_unused_ = false;         // journaled_ is a crash's record nobody loaded or replaced yet
    std::optional<Digest> file_digest_;     // of the state file on disk (nullopt: none), while locked
};

}  // namespace

std::unique_ptr<StateStore> make_dir_store(std::string dir, bool tpm2, mode_t file_mode, std::optional<Key> state_key) {
    return std::make_unique<DirStore>(std::move(dir), tpm2, file_mode, std::move(state_key));
}

Result<std::unique_ptr<StateStore>> open_store(std::string_view uri, bool tpm2, mode_t file_mode,
                                               std::optional<Key> state_key) {
    constexpr std::string_view kDir = "dir://";
    if (uri.substr(0, kDir.size()) == kDir) {
        std::string dir(uri.substr(kDir.size()));
        if (dir.empty()) return make_error(rc::kFail, "empty state directory in '" + std::string(uri) + "'");
        if (dir.size() + 20 > 4096) return make_error(rc::kFail, "state directory path too long");
        struct stat st{};
        if (::stat(dir.c_str(), &st) < 0 || !S_ISDIR(st.st_mode))
            return make_error(rc::kFail, "state directory " + dir + " does not exist or is not a directory");
        return make_dir_store(std::move(dir), tpm2, file_mode, std::move(state_key));
    }
    if (uri.substr(0, 7) == "file://") {
        std::string path(uri.substr(7));
        if (path.empty()) return make_error(rc::kFail, "empty state file in '" + std::string(uri) + "'");
        return make_linear_store(std::move(path), file_mode, std::move(state_key));
    }
    return make_error(rc::kFail, "unsupported state backend URI '" + std::string(uri) + "'");
}

std::string format_print_states(const std::vector<StateEntry>& entries) {
    std::string out = "{ \"type\": \"swtpm\", \"states\": [";
    for (size_t i = 0; i < entries.size(); ++i) {
        out += i ? ", " : " ";
        out += "{\"name\": \"" + entries[i].name + "\", \"size\": " + std::to_string(entries[i].size) + "}";
    }
    out += entries.empty() ? "] }" : " ] }";
    return out;
}

}  // namespace vtpm::store
