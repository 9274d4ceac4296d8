#include "store/journal_format.hpp"

#include <algorithm>
#include <cstring>

namespace vtpm::store::journal {
namespace {

constexpr char kHeaderMagic[8] = {'V', 'T', 'P', 'M', 'J', 'N', 'L', '1'};
constexpr char kRecordMagic[8] = {'V', 'T', 'P', 'M', 'R', 'E', 'C', '1'};
constexpr uint32_t kVersion = 1;
// magic, version, slot_size, epoch, base_present, base
constexpr size_t kHeaderFields = 8 + 4 + 4 + 8 + 1 + 32;

void put_magic(Bytes& out, const char (&m)[8]) {
    const size_t at = out.size();
    out.resize(at + 8);
    std::memcpy(out.data() + at, m, 8);
}

Digest record_digest(uint64_t epoch, uint64_t seq, ByteView data) {
    Bytes fields;
    put_be64(fields, epoch);
    put_be64(fields, seq);
    put_be32(fields, static_cast<uint32_t>(data.size()));
    return sha256({fields, data});
}

}  // namespace

Bytes encode_header(const Header& h) {
    Bytes out;
    out.reserve(kHeaderSize);
    put_magic(out, kHeaderMagic);
    put_be32(out, kVersion);
    put_be32(out, h.slot_size);
    put_be64(out, h.epoch);
    out.push_back(h.base ? 1 : 0);
    const Digest zero{};
    const Digest& base = h.base ? *h.base : zero;
    out.insert(out.end(), base.begin(), base.end());
    const Digest check = sha256(out);
    out.insert(out.end(), check.begin(), check.end());
    out.resize(kHeaderSize, 0);
    return out;
}

Result<Header> decode_header(ByteView bytes) {
    if (bytes.size() < kHeaderSize) return make_error(rc::kFail, "the journal is shorter than its header");
    if (std::memcmp(bytes.data(), kHeaderMagic, 8) != 0) return make_error(rc::kFail, "the journal's magic is wrong");
    const Digest check = sha256(bytes.first(kHeaderFields));
    if (!std::equal(check.begin(), check.end(), bytes.begin() + kHeaderFields))
        return make_error(rc::kFail, "the journal's header digest does not match (damaged)");
    if (load_be32(bytes.data() + 8) != kVersion) return make_error(rc::kFail, "unknown journal version");
    Header h;
    h.slot_size = load_be32(bytes.data() + 12);
    if (h.slot_size < kRecordHeader || h.slot_size > kMaxSlotSize)
        return make_error(rc::kFail, "the journal's slot size is out of range");
    h.epoch = load_be64(bytes.data() + 16);
    const uint8_t present = bytes[24];
    if (present > 1) return make_error(rc::kFail, "the journal's base flag is invalid");
    if (present) {
        Digest d;
        std::copy_n(bytes.begin() + 25, d.size(), d.begin());
        h.base = d;
    }
    return h;
}

Bytes encode_record(uint64_t epoch, uint64_t seq, ByteView data) {
    Bytes out;
    out.reserve(kRecordHeader + data.size());
    put_magic(out, kRecordMagic);
    put_be64(out, epoch);
    put_be64(out, seq);
    put_be32(out, static_cast<uint32_t>(data.size()));
    const Digest d = record_digest(epoch, seq, data);
    out.insert(out.end(), d.begin(), d.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

std::optional<Record> decode_record(ByteView slot, uint64_t epoch) {
    if (slot.size() < kRecordHeader || std::memcmp(slot.data(), kRecordMagic, 8) != 0) return std::nullopt;
    Record r;
    r.epoch = load_be64(slot.data() + 8);
    r.seq = load_be64(slot.data() + 16);
    const uint32_t len = load_be32(slot.data() + 24);
    if (r.epoch != epoch || len > slot.size() - kRecordHeader) return std::nullopt;
    r.data = slot.subspan(kRecordHeader, len);
    const Digest d = record_digest(r.epoch, r.seq, r.data);
    if (!std::equal(d.begin(), d.end(), slot.begin() + 28)) return std::nullopt;
    return r;
}

size_t slot_size_for(size_t data_size) {
    // Room for the record to double before the journal must be rebuilt.
    size_t want = std::max(kMinSlotSize, 2 * (data_size + kRecordHeader));
    return (want + 4095) / 4096 * 4096;
}

Result<View> parse(ByteView file) {
    auto h = decode_header(file);
    if (!h) return h.error();
    View v{*h, std::nullopt};
    for (uint64_t i = 0; i < 2; ++i) {
        const uint64_t off = kSlotsOffset + i * h->slot_size;
        if (off >= file.size()) break;
        const ByteView slot = file.subspan(off, std::min<uint64_t>(h->slot_size, file.size() - off));
        auto r = decode_record(slot, h->epoch);
        // A record sits in the slot its sequence number names; one found
        // elsewhere was not written by us.
        if (!r || r->seq % 2 != i) continue;
        if (!v.latest || r->seq > v.latest->seq) v.latest = r;
    }
    return v;
}

}  // namespace vtpm::store::journal
