#include "attest/event_log.hpp"

#include <cstring>
#include <string>

#include "tpm/objects.hpp"

namespace vtpm::attest {

namespace {

// Little-endian reader with bounds checks (the log is in host order, LE).
class Reader {
public:
    explicit Reader(ByteView d) : d_(d) {}
    size_t offset() const { return off_; }
    bool done() const { return off_ >= d_.size(); }
    bool u16(uint16_t& v) {
        if (d_.size() - off_ < 2) return false;
        v = static_cast<uint16_t>(d_[off_] | d_[off_ + 1] << 8);
        off_ += 2;
        return true;
    }
    bool u32(uint32_t& v) {
        if (d_.size() - off_ < 4) return false;
        v = static_cast<uint32_t>(d_[off_]) | static_cast<uint32_t>(d_[off_ + 1]) << 8 |
            static_cast<uint32_t>(d_[off_ + 2]) << 16 | static_cast<uint32_t>(d_[off_ + 3]) << 24;
        off_ += 4;
        return true;
    }
    bool bytes(size_t n, Bytes& out) {
        if (d_.size() - off_ < n) return false;
        out.assign(d_.begin() + static_cast<ptrdiff_t>(off_), d_.begin() + static_cast<ptrdiff_t>(off_ + n));
        off_ += n;
        return true;
    }

private:
    ByteView d_;
    size_t off_ = 0;
};

constexpr char kSpecId[] = "Spec ID Event03";  // 16 bytes with the NUL
constexpr char kStartupLocality[] = "StartupLocality";
constexpr uint32_t kMaxEventData = 16u << 20;

Error bad(size_t event, size_t off, const std::string& why) {
    return make_error(rc::kBadParameter, "event log: event " + std::to_string(event) + " at byte " +
                                             std::to_string(off) + ": " + why);
}

}  // namespace

Result<EventLog> parse_event_log(ByteView log) {
    EventLog out;
    Reader r(log);
    // Header: a TPM 1.2-format TCG_PCR_EVENT carrying the Spec ID event.
    uint32_t pcr = 0, type = 0, size = 0;
    Bytes sha1, data;
    if (!r.u32(pcr) || !r.u32(type) || !r.bytes(20, sha1) || !r.u32(size))
        return bad(0, 0, "truncated header event");
    if (type != kEvNoAction || size < 16 + 4 + 4 + 1 + 4 + 1 || size > 65536 || !r.bytes(size, data))
        return bad(0, 0, "not a crypto-agile log (no Spec ID event)");
    if (std::memcmp(data.data(), kSpecId, 16) != 0) return bad(0, 0, "not a crypto-agile log (no Spec ID Event03)");
    Reader s(data);
    Bytes skip;
    uint32_t n_algs = 0;
    s.bytes(16 + 4 + 4, skip);  // signature, platformClass, versions + uintnSize
    if (!s.u32(n_algs) || n_algs == 0 || n_algs > 16) return bad(0, 0, "bad algorithm count in the Spec ID event");
    for (uint32_t i = 0; i < n_algs; ++i) {
        uint16_t alg = 0, dsize = 0;
        if (!s.u16(alg) || !s.u16(dsize)) return bad(0, 0, "truncated algorithm list");
        if (tpm::hash_size(alg) && tpm::hash_size(alg) != dsize)
            return bad(0, 0, "wrong digest size for " + hex32(alg));
        out.algorithms.emplace_back(alg, dsize);
    }
    for (size_t n = 1; !r.done(); ++n) {
        const size_t at = r.offset();
        LogEvent e;
        uint32_t count = 0;
        if (!r.u32(e.pcr) || !r.u32(e.type) || !r.u32(count)) return bad(n, at, "truncated event header");
        if (e.pcr > 31) return bad(n, at, "PCR index " + std::to_string(e.pcr) + " out of range");
        if (count == 0 || count > out.algorithms.size()) return bad(n, at, "bad digest count " + std::to_string(count));
        for (uint32_t i = 0; i < count; ++i) {
            uint16_t alg = 0;
            if (!r.u16(alg)) return bad(n, at, "truncated digest");
            uint16_t dsize = 0;
            for (auto [a, sz] : out.algorithms)
                if (a == alg) dsize = sz;
            if (!dsize) return bad(n, at, "digest of algorithm " + hex32(alg) + " not declared in the header");
            Bytes d;
            if (!r.bytes(dsize, d)) return bad(n, at, "truncated digest");
            e.digests.emplace_back(alg, std::move(d));
        }
        uint32_t dlen = 0;
        if (!r.u32(dlen) || dlen > kMaxEventData || !r.bytes(dlen, e.data)) return bad(n, at, "truncated event data");
        out.events.push_back(std::move(e));
    }
    return out;
}

Result<PcrValues> replay_event_log(const EventLog& log) {
    PcrValues v;
    auto value = [&](uint16_t alg, unsigned pcr) -> Bytes& {
        auto [it, fresh] = v.try_emplace({alg, pcr}, Bytes(tpm::hash_size(alg), 0));
        (void)fresh;
        return it->second;
    };
    for (const auto& e : log.events) {
        if (e.type == kEvNoAction) {
            // StartupLocality sets PCR 0's initial value to the locality.
            if (e.pcr == 0 && e.data.size() >= 17 && std::memcmp(e.data.data(), kStartupLocality, 16) == 0)
                for (auto [alg, size] : log.algorithms)
                    if (tpm::hash_size(alg)) value(alg, 0).back() = e.data[16];
            continue;  // not measured
        }
        for (const auto& [alg, digest] : e.digests) {
            const EVP_MD* md = tpm::hash_md(alg);
            if (!md) continue;  // a bank we cannot compute: not checked
            Bytes& pcr = value(alg, e.pcr);
            Bytes in = pcr;
            in.insert(in.end(), digest.begin(), digest.end());
            unsigned char out[EVP_MAX_MD_SIZE];
            unsigned int olen = 0;
            if (EVP_Digest(in.data(), in.size(), out, &olen, md, nullptr) != 1)
                return make_error(rc::kFail, "digest failed while replaying the event log");
            pcr.assign(out, out + olen);
        }
    }
    return v;
}

}  // namespace vtpm::attest
