#include "x509/der.hpp"

#include <charconv>
#include <vector>

namespace vtpm::x509::der {

namespace {

void put_length(Bytes& out, size_t n) {
    if (n < 0x80) {
        out.push_back(static_cast<uint8_t>(n));
        return;
    }
    uint8_t buf[sizeof(size_t)];
    int len = 0;
    for (size_t v = n; v; v >>= 8) buf[len++] = static_cast<uint8_t>(v & 0xff);
    out.push_back(static_cast<uint8_t>(0x80 | len));
    while (len) out.push_back(buf[--len]);
}

void put_base128(Bytes& out, uint64_t v) {
    uint8_t buf[10];
    int len = 0;
    do {
        buf[len++] = static_cast<uint8_t>(v & 0x7f);
        v >>= 7;
    } while (v);
    while (len > 1) out.push_back(static_cast<uint8_t>(buf[--len] | 0x80));
    out.push_back(buf[0]);
}

}  // namespace

Bytes tlv(uint8_t tag, ByteView contents) {
    Bytes out{tag};
    put_length(out, contents.size());
    out.insert(out.end(), contents.begin(), contents.end());
    return out;
}

Bytes sequence(ByteView contents) { return tlv(0x30, contents); }
Bytes set(ByteView contents) { return tlv(0x31, contents); }

Bytes utf8(std::string_view s) {
    return tlv(0x0c, ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

Bytes integer(uint64_t v) {
    Bytes body;
    for (int shift = 56; shift >= 0; shift -= 8) {
        const auto b = static_cast<uint8_t>(v >> shift);
        if (body.empty() && b == 0 && shift) continue;
        // A set top bit would make the number negative: prepend a zero.
        if (body.empty() && (b & 0x80)) body.push_back(0);
        body.push_back(b);
    }
    return tlv(0x02, body);
}

Result<Bytes> oid(std::string_view dotted) {
    std::vector<uint64_t> arcs;
    const char* p = dotted.data();
    const char* end = p + dotted.size();
    while (p < end) {
        uint64_t v = 0;
        auto [q, ec] = std::from_chars(p, end, v);
        if (ec != std::errc{} || q == p)
            return make_error(rc::kBadParameter, "malformed OID '" + std::string(dotted) + "'");
        arcs.push_back(v);
        p = q;
        if (p < end) {
            if (*p != '.' || p + 1 == end)
                return make_error(rc::kBadParameter, "malformed OID '" + std::string(dotted) + "'");
            ++p;
        }
    }
    if (arcs.size() < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39))
        return make_error(rc::kBadParameter, "malformed OID '" + std::string(dotted) + "'");
    Bytes body;
    put_base128(body, arcs[0] * 40 + arcs[1]);
    for (size_t i = 2; i < arcs.size(); ++i) put_base128(body, arcs[i]);
    return tlv(0x06, body);
}

Bytes cat(std::initializer_list<ByteView> parts) {
    Bytes out;
    for (auto p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

}  // namespace vtpm::x509::der
