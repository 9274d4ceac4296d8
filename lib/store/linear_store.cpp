// swtpm's file:// ("linear") backend: every blob in one file behind a
// little-endian header of 15 slots {offset, data_length, section_length}
// (state-format.md §1.3). We keep swtpm's layout and allocation rules so
// either program opens the other's file, but where swtpm writes in place
// through an mmap, we write the whole image atomically (temp file, fsync,
// rename, fsync of the directory), and we take an fcntl lock on
// `<file>.lock` (swtpm 0.7.1 takes none for this backend).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "util/durable_file.hpp"
#include "store/state_file.hpp"
#include "store/state_store.hpp"
#include "util/fd.hpp"

namespace vtpm::store {
namespace {

constexpr uint64_t kMagic = 0x737774706d6c696eull;  // "swtpmlin"
constexpr uint8_t kVersion = 1;
constexpr size_t kSlots = 15;
constexpr size_t kHeaderSize = 8 + 1 + 1 + 2 + kSlots * 12;  // 192

uint32_t le32(const uint8_t* p) {
    return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
void put_le32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

struct Slot {
    uint32_t offset = 0, data_length = 0, section_length = 0;
};

// swtpm sizes a section as the next power of two of the blob.
uint32_t section_for(uint32_t n) {
    uint32_t s = 1;
    while (s < n) s <<= 1;
    return s;
}

int slot_of(std::string_view name) {
    if (name == kPermall) return 0;
    if (name == kVolatile) return 1;
    if (name == kSavestate) return 2;
    return -1;
}

class LinearStore final : public StateStore {
public:
    LinearStore(std::string path, mode_t mode, std::optional<Key> key)
        : path_(std::move(path)), mode_(mode), key_(std::move(key)) {}

    Result<void> lock() override {
        if (lock_fd_) return {};
        auto fd = take_lock(path_ + ".lock", "the state file " + path_, 0);
        if (!fd) return fd.error();
        lock_fd_ = std::move(*fd);
        auto r = read_image();
        // A file we cannot read is not ours to overwrite: give the lock back.
        if (!r) lock_fd_.reset();
        // A missing or unformatted file is formatted as an empty store when
        // opened, as swtpm does (swtpm_setup then finds a file to clear).
        else if (unformatted_) r = write_image();
        return r;
    }
    void unlock() override { lock_fd_.reset(); }
    bool locked() const override { return lock_fd_.valid(); }

    Result<Bytes> load_raw(std::string_view name) override {
        if (auto r = read_image(); !r) return r.error();
        int i = slot_of(name);
        if (i < 0) return make_error(rc::kFail, "unknown state blob " + std::string(name));
        Slot s = slots_[i];
        if (s.offset == 0) return make_error(rc::kRetry, std::string(name) + " is not in " + path_);
        if (size_t{s.offset} + s.data_length > image_.size())
            return make_error(rc::kFail,
                              path_ + ": slot for " + std::string(name) + " points past the end of the file");
        return Bytes(image_.begin() + s.offset, image_.begin() + s.offset + s.data_length);
    }

    Result<SecureBytes> load(std::string_view name) override {
        auto raw = load_raw(name);
        if (!raw) return raw.error();
        auto plain = decode_state_file(*raw, key_ ? &*key_ : nullptr);
        if (!plain) return make_error(plain.code(), path_ + " (" + std::string(name) + "): " + plain.error().message);
        return plain;
    }

    Result<void> store(std::string_view name, ByteView plain) override {
        if (!lock_fd_) return make_error(rc::kFail, "refusing to change " + path_ + ": the state lock is not held");
        int i = slot_of(name);
        if (i < 0) return make_error(rc::kFail, "unknown state blob " + std::string(name));
        auto file = encode_state_file(plain, key_ ? &*key_ : nullptr);
        if (!file) return file.error();
        const uint32_t n = static_cast<uint32_t>(file->size());
        if (slots_[i].offset == 0) {
            append(i, n);
        } else if (n > slots_[i].section_length) {
            drop(i);
            append(i, n);
        }
        slots_[i].data_length = n;
        std::memcpy(image_.data() + slots_[i].offset, file->data(), n);
        return write_image();
    }

    Result<void> remove(std::string_view name, bool must_exist) override {
        if (!lock_fd_) return make_error(rc::kFail, "refusing to change " + path_ + ": the state lock is not held");
        int i = slot_of(name);
        if (i < 0) return make_error(rc::kFail, "unknown state blob " + std::string(name));
        if (slots_[i].offset == 0) {
            if (must_exist) return make_error(rc::kFail, std::string(name) + " is not in " + path_);
            return {};
        }
        drop(i);
        return write_image();
    }

    Result<std::vector<StateEntry>> list() override {
        if (auto r = read_image(); !r) return r.error();
        std::vector<StateEntry> out;
        for (std::string_view n : {kPermall, kVolatile, kSavestate}) {
            const Slot& s = slots_[slot_of(n)];
            if (s.offset) out.push_back({std::string(n), s.data_length});
        }
        return out;
    }

    const Key* state_key() const override { return key_ ? &*key_ : nullptr; }

private:
    // Load the file (a missing or unformatted one becomes an empty store).
    // The image in memory changes only when the whole file checked out: a
    // failed read leaves the last good one (and a failed lock() holds none).
    Result<void> read_image() {
        auto empty = [this] {
            image_.assign(kHeaderSize, 0);
            slots_ = {};
            unformatted_ = true;
            return Result<void>{};
        };
        unformatted_ = false;
        auto file = read_whole_file(path_);
        if (!file) return file.code() == rc::kRetry ? empty() : Result<void>{file.error()};
        Bytes data = std::move(*file);
        if (data.size() < kHeaderSize) return empty();  // too small to be formatted: swtpm formats it anew too
        uint64_t magic = 0;
        for (int b = 7; b >= 0; --b) magic = magic << 8 | data[static_cast<size_t>(b)];
        if (magic != kMagic) return empty();
        if (data[8] > kVersion)
            return make_error(rc::kFail, path_ + ": unknown linear format version " + std::to_string(data[8]));
        const uint16_t hdr = static_cast<uint16_t>(data[10] | data[11] << 8);
        if (hdr != kHeaderSize) return make_error(rc::kFail, path_ + ": unexpected header size " + std::to_string(hdr));
        // Every length and offset comes from the file: check them all before
        // any is used to place a blob (a section that claims more room than
        // the file has would otherwise be written past the image).
        std::array<Slot, 3> slots{};
        for (size_t i = 0; i < kSlots && i < slots.size(); ++i) {
            const uint8_t* p = data.data() + 12 + i * 12;
            const Slot s{le32(p), le32(p + 4), le32(p + 8)};
            slots[i] = s;
            if (!s.offset) continue;
            const std::string where = path_ + ": slot " + std::to_string(i);
            if (s.offset < kHeaderSize) return make_error(rc::kFail, where + " starts inside the header");
            if (s.data_length > s.section_length)
                return make_error(rc::kFail, where + " holds more data than its section");
            if (uint64_t{s.offset} + s.section_length > data.size())
                return make_error(rc::kFail, where + " lies outside the file");
            for (size_t j = 0; j < i; ++j) {
                const Slot& o = slots[j];
                if (o.offset && s.offset < uint64_t{o.offset} + o.section_length &&
                    o.offset < uint64_t{s.offset} + s.section_length)
                    return make_error(rc::kFail, where + " overlaps slot " + std::to_string(j));
            }
        }
        slots_ = slots;
        image_ = std::move(data);
        return {};
    }

    // Place slot i at the end with a power-of-two section, as swtpm does.
    void append(int i, uint32_t n) {
        uint32_t end = kHeaderSize;
        for (const Slot& s : slots_)
            if (s.offset) end = std::max(end, s.offset + s.section_length);
        Slot& s = slots_[i];
        s.offset = end;
        s.section_length = section_for(n);
        if (image_.size() < size_t{end} + s.section_length) image_.resize(size_t{end} + s.section_length, 0);
    }

    // Remove slot i and move the following sections forward (no holes).
    void drop(int i) {
        Slot old = slots_[i];
        slots_[i] = Slot{};
        uint32_t state_end = 0, next = 0xffffffff;
        for (Slot& s : slots_) {
            if (!s.offset || s.offset <= old.offset) continue;
            next = std::min(next, s.offset);
            state_end = std::max(state_end, s.offset + s.section_length);
            s.offset -= old.section_length;
        }
        if (next != 0xffffffff)
            std::memmove(image_.data() + old.offset, image_.data() + next, state_end - next);
        image_.resize(image_.size() >= old.section_length ? image_.size() - old.section_length : kHeaderSize);
        if (image_.size() < kHeaderSize) image_.resize(kHeaderSize, 0);
    }

    Result<void> write_image() {
        for (int b = 0; b < 8; ++b) image_[static_cast<size_t>(b)] = static_cast<uint8_t>(kMagic >> (8 * b));
        image_[8] = kVersion;
        image_[9] = 0;
        image_[10] = static_cast<uint8_t>(kHeaderSize & 0xff);
        image_[11] = static_cast<uint8_t>(kHeaderSize >> 8);
        for (size_t i = 0; i < kSlots; ++i) {
            uint8_t* p = image_.data() + 12 + i * 12;
            Slot s = i < slots_.size() ? slots_[i] : Slot{};
            put_le32(p, s.offset);
            put_le32(p + 4, s.data_length);
            put_le32(p + 8, s.section_length);
        }
        return replace_file_durably(path_ + ".tmp", path_, image_, mode_);
    }

    std::string path_;
    mode_t mode_;
    std::optional<Key> key_;
    UniqueFd lock_fd_;
    Bytes image_;
    bool unformatted_ = false;  // the last read found no formatted store
    std::array<Slot, 3> slots_{};  // permall, volatilestate, savestate (slots 3..14 unused by one TPM)
};

}  // namespace

std::unique_ptr<StateStore> make_linear_store(std::string path, mode_t file_mode, std::optional<Key> state_key) {
    return std::make_unique<LinearStore>(std::move(path), file_mode, std::move(state_key));
}

}  // namespace vtpm::store
