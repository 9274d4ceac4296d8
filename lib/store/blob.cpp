// Blob header and TLV records (state-format.md §2.1, §2.2).
#include "store/blob.hpp"

#include <string>

namespace vtpm::store {

Result<BlobHeader> parse_header(ByteView blob) {
    if (blob.size() < kBlobHeaderSize)
        return make_error(rc::kBadParameter, "blob of " + std::to_string(blob.size()) +
                                                 " bytes is shorter than its 10-byte header");
    BlobHeader h;
    h.version = blob[0];
    h.min_version = blob[1];
    h.hdrsize = load_be16(blob.data() + 2);
    h.flags = load_be16(blob.data() + 4);
    h.totlen = load_be32(blob.data() + 6);
    if (h.totlen != blob.size())
        return make_error(rc::kBadParameter, "blob header says " + std::to_string(h.totlen) + " bytes, blob has " +
                                                 std::to_string(blob.size()) + " (truncated or padded)");
    if (h.min_version > kBlobVersion)
        return make_error(rc::kBadVersion, "blob needs format version " + std::to_string(h.min_version) +
                                               ", this reader knows " + std::to_string(kBlobVersion));
    if (h.hdrsize != kBlobHeaderSize)
        return make_error(rc::kBadDataSize, "blob header size " + std::to_string(h.hdrsize) + " is not 10");
    return h;
}

Bytes make_blob(uint16_t flags, ByteView payload) {
    Bytes out;
    out.reserve(kBlobHeaderSize + payload.size());
    out.push_back(kBlobVersion);
    out.push_back(kBlobMinVersion);
    put_be16(out, kBlobHeaderSize);
    put_be16(out, flags);
    put_be32(out, static_cast<uint32_t>(kBlobHeaderSize + payload.size()));
    out.insert(out.end(), payload.begin(), payload.end());
    return out;
}

void append_blob_tlv(Bytes& blob, uint16_t tag, ByteView value) {
    append_tlv(blob, tag, value);
    store_be32(blob.data() + 6, static_cast<uint32_t>(blob.size()));
}

std::optional<ByteView> find_blob_tlv(ByteView blob, uint16_t tag) {
    if (!parse_header(blob)) return std::nullopt;
    return find_tlv(blob.subspan(kBlobHeaderSize), tag);
}

void append_tlv(Bytes& out, uint16_t tag, ByteView value) {
    put_be16(out, tag);
    put_be32(out, static_cast<uint32_t>(value.size()));
    out.insert(out.end(), value.begin(), value.end());
}

std::optional<ByteView> find_tlv(ByteView stream, uint16_t tag) {
    size_t off = 0;
    while (stream.size() - off >= 6) {
        uint16_t t = load_be16(stream.data() + off);
        uint32_t len = load_be32(stream.data() + off + 2);
        off += 6;
        if (len > stream.size() - off) return std::nullopt;  // runs past the end: stop, as swtpm does
        if (t == tag) return stream.subspan(off, len);
        off += len;
    }
    return std::nullopt;
}

}  // namespace vtpm::store
