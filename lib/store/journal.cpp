#include "store/journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/durable_file.hpp"

namespace vtpm::store {
namespace {
std::string errstr() { return std::strerror(errno); }
}  // namespace

Result<JournalContents> read_journal(const std::string& path) {
    auto raw = read_whole_file(path);
    if (!raw) return raw.error();
    auto view = journal::parse(*raw);
    if (!view) {
        wipe(*raw);
        return make_error(rc::kFail, path + ": " + view.error().message);
    }
    JournalContents c;
    c.header = view->header;
    if (view->latest) {
        c.latest_seq = view->latest->seq;
        c.latest_data = SecureBytes(view->latest->data);
    }
    wipe(*raw);
    return c;
}

Result<Journal> Journal::open(const std::string& path, const JournalContents& contents) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return make_error(rc::kFail, "could not open the journal " + path + ": " + errstr());
    // Records continue after the newest one: its slot is not overwritten
    // before the next record is whole.
    const uint64_t next = contents.latest_seq ? *contents.latest_seq + 1 : 1;
    return Journal(std::move(fd), path, contents.header, next);
}

Result<Journal> Journal::create(const std::string& path, std::optional<Digest> base, size_t slot_size, mode_t mode,
                                std::optional<ByteView> first) {
    journal::Header h;
    h.slot_size = static_cast<uint32_t>(slot_size);
    h.epoch = 1;
    h.base = base;
    if (slot_size > journal::kMaxSlotSize) return make_error(rc::kSize, "the state is too large for the journal");
    if (first && journal::kRecordHeader + first->size() > h.slot_size)
        return make_error(rc::kSize, "the state does not fit the journal's slots");
    // The slots are written as zeros so later appends overwrite allocated
    // blocks: their fdatasync then has no metadata to flush.
    Bytes file = journal::encode_header(h);
    file.resize(journal::file_size(h), 0);
    uint64_t next = 1;
    if (first) {
        Bytes rec = journal::encode_record(h.epoch, next, *first);
        std::copy(rec.begin(), rec.end(), file.begin() + static_cast<long>(journal::slot_offset(h, next)));
        wipe(rec);
        ++next;
    }
    auto written = replace_file_durably(path + ".tmp", path, file, mode);
    wipe(file);
    if (!written) return written.error();
    Journal j{UniqueFd(), path, h, next};
    j.first_seq_ = 1;
    j.fd_.reset(::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    if (!j.fd_) return make_error(rc::kFail, "could not open the journal " + path + ": " + errstr());
    return j;
}

bool Journal::fits(size_t data_size) const { return journal::kRecordHeader + data_size <= header_.slot_size; }

Result<void> Journal::write_at(ByteView bytes, uint64_t offset) {
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::pwrite(fd_.get(), bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return make_error(rc::kFail, "could not write the journal " + path_ + ": " + errstr());
        done += static_cast<size_t>(n);
    }
    if (::fdatasync(fd_.get()) < 0) return make_error(rc::kFail, "could not sync the journal " + path_ + ": " + errstr());
    return {};
}

Result<void> Journal::append(ByteView data) {
    if (!fits(data.size())) return make_error(rc::kSize, "the state does not fit the journal's slots");
    Bytes rec = journal::encode_record(header_.epoch, next_seq_, data);
    auto r = write_at(rec, journal::slot_offset(header_, next_seq_));
    wipe(rec);
    if (!r) return r;
    ++next_seq_;
    return {};
}

Result<void> Journal::reset(std::optional<Digest> base) {
    journal::Header h = header_;
    h.epoch += 1;
    h.base = base;
    if (auto r = write_at(journal::encode_header(h), 0); !r) return r;
    header_ = h;
    first_seq_ = next_seq_;
    return {};
}

}  // namespace vtpm::store
