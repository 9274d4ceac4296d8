// swtpm's file:// ("linear") backend: every blob in one file behind a
// little-endian header of 15 slots {offset, data_length, section_length}
// (state-format.md §1.3). We keep swtpm's layout and allocation rules so
// either program opens the other's file, but where swtpm writes in place
// through an mmap, we write the whole image atomically (temp file, fsync,
// rename, fsync of the directory), and we take an fcntl lock on
// `<file>.lock` (swtpm 0.7.1 takes none for this backend).
// A block device (shared storage) cannot be renamed over: the image goes
// in place behind a journal at the device's end (BlockDevice below), and
// the fcntl lock is on the device itself.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>

#include "util/durable_file.hpp"
#include "store/state_file.hpp"
#include "store/state_store.hpp"
#include "util/fd.hpp"
#include "util/sha256.hpp"

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

std::string errtext() { return std::strerror(errno); }

// A block device holding a linear store. A write is made crash-safe with a
// journal: the new image is first written near the device's end, then a
// journal sector (last 512 bytes: magic, length, offset, SHA-256) names
// it, then the image is written at offset 0, then the journal is cleared;
// each step synced. After a crash the next open finishes (or, if the
// journal never became valid, ignores) the write, so the store is always
// the old image or the new one. swtpm reads the image at 0 and never looks
// at the end of the device.
class BlockDevice {
public:
    static constexpr uint64_t kJournalMagic = 0x4c4e524a4d505456ull;  // "VTPMJRNL"
    static constexpr size_t kSector = 512;

    static Result<BlockDevice> open(const std::string& path) {
        UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
        if (!fd) return make_error(rc::kFail, "could not open the block device " + path + ": " + errtext());
        uint64_t size = 0;
        if (::ioctl(fd.get(), BLKGETSIZE64, &size) != 0)
            return make_error(rc::kFail, path + ": could not get the block device's size: " + errtext());
        if (size < 4 * kSector) return make_error(rc::kFail, path + ": the block device is too small");
        return BlockDevice(path, std::move(fd), size);
    }

    uint64_t size() const { return size_; }

    Result<Bytes> read(uint64_t off, size_t len) const {
        Bytes out(len);
        size_t got = 0;
        while (got < len) {
            const ssize_t n = ::pread(fd_.get(), out.data() + got, len - got, static_cast<off_t>(off + got));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return make_error(rc::kFail, path_ + ": read failed: " + (n < 0 ? errtext() : "short"));
            got += static_cast<size_t>(n);
        }
        return out;
    }

    // Finish or drop an interrupted write; true if one was finished.
    Result<bool> recover() {
        auto j = read(size_ - kSector, kSector);
        if (!j) return j.error();
        if (load64(j->data()) != kJournalMagic) return false;
        const uint64_t len = load64(j->data() + 8), off = load64(j->data() + 16);
        bool finished = false;
        if (len <= off && off + len <= size_ - kSector) {
            auto copy = read(off, static_cast<size_t>(len));
            if (!copy) return copy.error();
            if (sha256_bytes(*copy) == Bytes(j->begin() + 24, j->begin() + 56)) {
                if (auto w = write_synced(0, *copy); !w) return w.error();
                finished = true;
            }
        }
        if (auto w = write_synced(size_ - kSector, Bytes(kSector, 0)); !w) return w.error();
        return finished;
    }

    // Replace the image at offset 0 by `image`; `old_extent`: how much of the
    // device the current image uses (the journal copy must not touch it).
    Result<void> write(ByteView image, uint64_t old_extent) {
        const uint64_t len = image.size();
        const uint64_t rounded = (len + kSector - 1) / kSector * kSector;
        if (size_ < kSector + rounded || size_ - kSector - rounded < std::max(len, old_extent))
            return make_error(rc::kFail, path_ + ": the block device (" + std::to_string(size_) +
                                             " bytes) is too small for a crash-safe write of " + std::to_string(len) +
                                             " bytes (it needs twice the state and 512 bytes)");
        const uint64_t off = size_ - kSector - rounded;
        if (auto w = write_synced(off, image); !w) return w;
        Bytes j(kSector, 0);
        store64(j.data(), kJournalMagic);
        store64(j.data() + 8, len);
        store64(j.data() + 16, off);
        const Bytes digest = sha256_bytes(image);
        std::memcpy(j.data() + 24, digest.data(), digest.size());
        if (auto w = write_synced(size_ - kSector, j); !w) return w;
        if (auto w = write_synced(0, image); !w) return w;
        return write_synced(size_ - kSector, Bytes(kSector, 0));
    }

private:
    BlockDevice(std::string path, UniqueFd fd, uint64_t size) : path_(std::move(path)), fd_(std::move(fd)), size_(size) {}

    static uint64_t load64(const uint8_t* p) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
        return v;
    }
    static void store64(uint8_t* p, uint64_t v) {
        for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
    }

    Result<void> write_synced(uint64_t off, ByteView data) {
        size_t done = 0;
        while (done < data.size()) {
            const ssize_t n =
                ::pwrite(fd_.get(), data.data() + done, data.size() - done, static_cast<off_t>(off + done));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return make_error(rc::kFail, path_ + ": write failed: " + (n < 0 ? errtext() : "short"));
            done += static_cast<size_t>(n);
        }
        if (::fdatasync(fd_.get()) != 0) return make_error(rc::kFail, path_ + ": sync failed: " + errtext());
        return {};
    }

    std::string path_;
    UniqueFd fd_;
    uint64_t size_ = 0;
};

bool is_block_device(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode);
}

class LinearStore final : public StateStore {
public:
    LinearStore(std::string path, mode_t mode, std::optional<Key> key)
        : path_(std::move(path)), mode_(mode), key_(std::move(key)) {}

    Result<void> lock() override {
        if (lock_fd_) return {};
        if (is_block_device(path_)) {
            // The lock is on the device itself; an interrupted write is
            // finished before anything is read.
            auto fd = take_lock(path_, "the state block device " + path_, 0);
            if (!fd) return fd.error();
            auto dev = BlockDevice::open(path_);
            if (!dev) return dev.error();
            if (auto rec = dev->recover(); !rec) return rec.error();
            device_.emplace(std::move(*dev));
            lock_fd_ = std::move(*fd);
        } else {
            auto fd = take_lock(path_ + ".lock", "the state file " + path_, 0);
            if (!fd) return fd.error();
            lock_fd_ = std::move(*fd);
        }
        auto r = read_image();
        // A file we cannot read is not ours to overwrite: give the lock back.
        if (!r) lock_fd_.reset();
        // A missing or unformatted file is formatted as an empty store when
        // opened, as swtpm does (swtpm_setup then finds a file to clear).
        else if (unformatted_) r = write_image();
        return r;
    }
    void unlock() override {
        lock_fd_.reset();
        device_.reset();
    }
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
        auto file = read_all();
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
        if (device_) {
            const Result<void> w = device_->write(image_, device_extent_);
            if (w) device_extent_ = image_.size();
            return w;
        }
        return replace_file_durably(path_ + ".tmp", path_, image_, mode_);
    }

    // The store's bytes: the whole file, or a block device's header and
    // the sections it names (a device is far larger than its store).
    Result<Bytes> read_all() {
        if (!device_) {
            if (is_block_device(path_))
                return make_error(rc::kFail, path_ + " is a block device: it is read with its lock held");
            return read_whole_file(path_);
        }
        auto head = device_->read(0, kHeaderSize);
        if (!head) return head.error();
        uint64_t end = kHeaderSize;
        for (size_t i = 0; i < kSlots; ++i) {
            const uint8_t* p = head->data() + 12 + i * 12;
            if (le32(p)) end = std::max<uint64_t>(end, uint64_t{le32(p)} + le32(p + 8));
        }
        // An unformatted device's header is noise: read only the header then.
        uint64_t magic = 0;
        for (int b = 7; b >= 0; --b) magic = magic << 8 | (*head)[static_cast<size_t>(b)];
        if (magic != kMagic || end > device_->size()) end = kHeaderSize;
        device_extent_ = end;
        return device_->read(0, static_cast<size_t>(end));
    }

    std::string path_;
    mode_t mode_;
    std::optional<Key> key_;
    UniqueFd lock_fd_;
    Bytes image_;
    std::optional<BlockDevice> device_;  // while locked, when path_ is a block device
    uint64_t device_extent_ = 0;         // how much of the device the current image uses
    bool unformatted_ = false;  // the last read found no formatted store
    std::array<Slot, 3> slots_{};  // permall, volatilestate, savestate (slots 3..14 unused by one TPM)
};

}  // namespace

std::unique_ptr<StateStore> make_linear_store(std::string path, mode_t file_mode, std::optional<Key> state_key) {
    return std::make_unique<LinearStore>(std::move(path), file_mode, std::move(state_key));
}

}  // namespace vtpm::store
