#include "attest/evidence.hpp"

#include <cstring>
#include <set>
#include <string>

namespace vtpm::attest {

namespace {

constexpr uint8_t kBundleMagic[8] = {'V', 'T', 'P', 'M', 'I', 'D', '0', '1'};
constexpr uint8_t kEvidenceMagic[8] = {'V', 'T', 'P', 'M', 'E', 'V', '0', '1'};

namespace tag {
// IdentityBundle
constexpr uint16_t kAuthKeyPublic = 1, kCertifyAttest = 2, kCertifySignature = 3, kHostPcrSelection = 4,
                   kHostPcrDigest = 5, kGeneration = 6, kOwnerPublic = 7, kOwnerApproval = 8,
                   kHostQuoteAttest = 9, kHostQuoteSignature = 10;
// Evidence
constexpr uint16_t kQuoteAttest = 1, kQuoteSignature = 2, kPcrValue = 3, kVaikPublic = 4, kVaikCert = 5,
                   kIdentityBundle = 6, kEventLog = 7;
}  // namespace tag

void put(Bytes& out, uint16_t t, ByteView v) {
    put_be16(out, t);
    put_be32(out, static_cast<uint32_t>(v.size()));
    out.insert(out.end(), v.begin(), v.end());
}

struct Record {
    uint16_t tag;
    ByteView value;
};

Result<std::vector<Record>> split(ByteView data, const uint8_t (&magic)[8], const char* what) {
    if (data.size() < 8 || std::memcmp(data.data(), magic, 8) != 0)
        return make_error(rc::kBadParameter, std::string("not a ") + what + " (bad magic)");
    std::vector<Record> out;
    size_t off = 8;
    while (off < data.size()) {
        if (data.size() - off < 6)
            return make_error(rc::kBadParameter, std::string(what) + ": truncated record header at byte " +
                                                     std::to_string(off));
        const uint16_t t = load_be16(data.data() + off);
        const uint32_t len = load_be32(data.data() + off + 2);
        off += 6;
        if (len > data.size() - off)
            return make_error(rc::kBadParameter, std::string(what) + ": record " + std::to_string(t) + " of " +
                                                     std::to_string(len) + " bytes runs past the end");
        out.push_back({t, data.subspan(off, len)});
        off += len;
    }
    return out;
}

// Assign a single-valued field once.
Result<void> once(std::set<uint16_t>& seen, uint16_t t, Bytes& field, ByteView v, const char* what) {
    if (!seen.insert(t).second)
        return make_error(rc::kBadParameter, std::string(what) + ": record " + std::to_string(t) + " repeated");
    field.assign(v.begin(), v.end());
    return {};
}

}  // namespace

Bytes encode_bundle(const IdentityBundle& b) {
    Bytes out(kBundleMagic, kBundleMagic + 8);
    put(out, tag::kAuthKeyPublic, b.authkey_public);
    put(out, tag::kCertifyAttest, b.certify_attest);
    put(out, tag::kCertifySignature, b.certify_signature);
    put(out, tag::kHostPcrSelection, b.host_pcr_selection);
    put(out, tag::kHostPcrDigest, b.host_pcr_digest);
    put(out, tag::kOwnerPublic, b.owner_public);
    put(out, tag::kOwnerApproval, b.owner_approval);
    put(out, tag::kHostQuoteAttest, b.host_quote_attest);
    put(out, tag::kHostQuoteSignature, b.host_quote_signature);
    Bytes gen;
    put_be64(gen, b.generation);
    put(out, tag::kGeneration, gen);
    return out;
}

Result<IdentityBundle> decode_bundle(ByteView data) {
    constexpr const char* what = "identity bundle";
    auto recs = split(data, kBundleMagic, what);
    if (!recs) return recs.error();
    IdentityBundle b;
    std::set<uint16_t> seen;
    Bytes gen;
    for (const auto& r : *recs) {
        Bytes* f = nullptr;
        switch (r.tag) {
            case tag::kAuthKeyPublic: f = &b.authkey_public; break;
            case tag::kCertifyAttest: f = &b.certify_attest; break;
            case tag::kCertifySignature: f = &b.certify_signature; break;
            case tag::kHostPcrSelection: f = &b.host_pcr_selection; break;
            case tag::kHostPcrDigest: f = &b.host_pcr_digest; break;
            case tag::kGeneration: f = &gen; break;
            case tag::kOwnerPublic: f = &b.owner_public; break;
            case tag::kOwnerApproval: f = &b.owner_approval; break;
            case tag::kHostQuoteAttest: f = &b.host_quote_attest; break;
            case tag::kHostQuoteSignature: f = &b.host_quote_signature; break;
            default: continue;
        }
        if (auto x = once(seen, r.tag, *f, r.value, what); !x) return x.error();
    }
    for (uint16_t t : {tag::kAuthKeyPublic, tag::kCertifyAttest, tag::kCertifySignature, tag::kHostPcrSelection,
                       tag::kHostPcrDigest, tag::kGeneration, tag::kOwnerPublic, tag::kOwnerApproval,
                       tag::kHostQuoteAttest, tag::kHostQuoteSignature})
        if (!seen.count(t))
            return make_error(rc::kBadParameter, "identity bundle: record " + std::to_string(t) +
                                                     " missing (stripped, or issued by an older libvtpm: re-issue "
                                                     "the identity)");
    if (gen.size() != 8) return make_error(rc::kBadParameter, "identity bundle: generation is not 8 bytes");
    b.generation = load_be64(gen.data());
    return b;
}

Bytes encode_evidence(const Evidence& e) {
    Bytes out(kEvidenceMagic, kEvidenceMagic + 8);
    put(out, tag::kQuoteAttest, e.quote_attest);
    put(out, tag::kQuoteSignature, e.quote_signature);
    for (const auto& p : e.pcrs) {
        Bytes v;
        put_be16(v, p.alg);
        v.push_back(p.index);
        v.insert(v.end(), p.digest.begin(), p.digest.end());
        put(out, tag::kPcrValue, v);
    }
    put(out, tag::kVaikPublic, e.vaik_public);
    put(out, tag::kVaikCert, e.vaik_cert);
    put(out, tag::kIdentityBundle, e.identity_bundle);
    for (const auto& l : e.event_logs) put(out, tag::kEventLog, l);
    return out;
}

Result<Evidence> decode_evidence(ByteView data) {
    constexpr const char* what = "evidence file";
    if (data.size() > kMaxEvidence)
        return make_error(rc::kBadParameter, "evidence file larger than " + std::to_string(kMaxEvidence) + " bytes");
    auto recs = split(data, kEvidenceMagic, what);
    if (!recs) return recs.error();
    Evidence e;
    std::set<uint16_t> seen;
    for (const auto& r : *recs) {
        Bytes* f = nullptr;
        switch (r.tag) {
            case tag::kQuoteAttest: f = &e.quote_attest; break;
            case tag::kQuoteSignature: f = &e.quote_signature; break;
            case tag::kVaikPublic: f = &e.vaik_public; break;
            case tag::kVaikCert: f = &e.vaik_cert; break;
            case tag::kIdentityBundle: f = &e.identity_bundle; break;
            case tag::kPcrValue: {
                if (r.value.size() < 3 + 20 || r.value.size() > 3 + 64)
                    return make_error(rc::kBadParameter, "evidence file: PCR value record of " +
                                                             std::to_string(r.value.size()) + " bytes");
                e.pcrs.push_back({load_be16(r.value.data()), r.value[2], Bytes(r.value.begin() + 3, r.value.end())});
                continue;
            }
            case tag::kEventLog: e.event_logs.emplace_back(r.value.begin(), r.value.end()); continue;
            default: continue;
        }
        if (auto x = once(seen, r.tag, *f, r.value, what); !x) return x.error();
    }
    for (auto [t, name] : {std::pair{tag::kQuoteAttest, "quote"}, {tag::kQuoteSignature, "quote signature"},
                           {tag::kVaikPublic, "vAIK public key"}, {tag::kVaikCert, "CertvAIK"},
                           {tag::kIdentityBundle, "identity bundle"}})
        if (!seen.count(t)) return make_error(rc::kBadParameter, std::string("evidence file: no ") + name);
    return e;
}

}  // namespace vtpm::attest
