// swtpm's dir:// backend: where state hits the disk. Every write is atomic
// and durable (temp file, fsync, rename, fsync of the directory), so a crash
// leaves either the old or the new file, never a torn one.
#include <fcntl.h>
#include <openssl/crypto.h>
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

namespace vtpm::store {
namespace {

std::string errstr() { return std::strerror(errno); }

// Encoded files may hold plain state: wipe them once written or decoded.
void wipe(Bytes& b) {
    if (!b.empty()) OPENSSL_cleanse(b.data(), b.size());
}

class DirStore final : public StateStore {
public:
    DirStore(std::string dir, bool tpm2, mode_t mode, std::optional<Key> key)
        : dir_(std::move(dir)), tpm2_(tpm2), mode_(mode), key_(std::move(key)) {
        while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
    }

    Result<void> lock() override {
        if (lock_fd_) return {};
        // The same fcntl lock swtpm takes, so the two exclude each other.
        auto fd = take_lock(dir_ + "/.lock", "the state directory " + dir_, O_TRUNC);
        if (!fd) return fd.error();
        lock_fd_ = std::move(*fd);
        return {};
    }

    void unlock() override {
        lock_fd_.reset();
        // Someone else may write the files now: forget what we knew.
        digests_ = {};
    }
    bool locked() const override { return lock_fd_.valid(); }

    Result<Bytes> load_raw(std::string_view name) override {
        return read_whole_file(file_path("tpm", name), mode_);
    }

    Result<SecureBytes> load(std::string_view name) override {
        auto raw = load_raw(name);
        if (!raw) return raw.error();
        auto plain = decode_state_file(*raw, key_ ? &*key_ : nullptr);
        wipe(*raw);
        if (!plain)
            return make_error(plain.code(), file_path("tpm", name) + ": " + plain.error().message);
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
        if (known && *known == d && ::access(file_path("tpm", name).c_str(), F_OK) == 0) return {};
        auto file = encode_state_file(plain, key_ ? &*key_ : nullptr);
        if (!file) return file.error();
        std::string tmp = file_path("TMP", name), final_path = file_path("tpm", name);
        auto r = replace_file_durably(tmp, final_path, *file, mode_);
        wipe(*file);
        if (known) *known = r ? d : Digest{};
        return r;
    }

    Result<void> remove(std::string_view name, bool must_exist) override {
        if (auto l = require_lock(name); !l) return l;
        if (Digest* known = known_digest(name)) *known = Digest{};
        // Durable: a used volatile state that came back after a power cut
        // would be resumed from again.
        return remove_file_durably(file_path("tpm", name), must_exist);
    }

    Result<std::vector<StateEntry>> list() override {
        std::vector<StateEntry> out;
        for (std::string_view n : {kPermall, kVolatile, kSavestate}) {
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

    std::string dir_;
    bool tpm2_;
    mode_t mode_;
    std::optional<Key> key_;
    UniqueFd lock_fd_;
    std::array<Digest, 3> digests_{};
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
