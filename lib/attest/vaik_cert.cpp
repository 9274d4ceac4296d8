#include "attest/vaik_cert.hpp"

#include <cctype>

#include "x509/der.hpp"
#include "x509/tcg_cert.hpp"
#include "x509/x509_build.hpp"

namespace vtpm::attest {

namespace der = x509::der;

namespace {

// A bounds-checked reader of the few DER elements our extension uses.
class DerReader {
public:
    explicit DerReader(ByteView d) : d_(d) {}
    bool done() const { return off_ == d_.size(); }
    /// Next element with tag `tag`; its contents in `out`.
    bool next(uint8_t tag, ByteView& out) {
        if (d_.size() - off_ < 2 || d_[off_] != tag) return false;
        size_t len = d_[off_ + 1];
        size_t hdr = 2;
        if (len & 0x80) {
            const size_t n = len & 0x7f;
            if (n == 0 || n > 3 || d_.size() - off_ < 2 + n) return false;
            len = 0;
            for (size_t i = 0; i < n; ++i) len = len << 8 | d_[off_ + 2 + i];
            hdr += n;
        }
        if (d_.size() - off_ - hdr < len) return false;
        out = d_.subspan(off_ + hdr, len);
        off_ += hdr + len;
        return true;
    }

private:
    ByteView d_;
    size_t off_ = 0;
};

Bytes octets(ByteView v) { return der::tlv(0x04, v); }

}  // namespace

Result<Bytes> issue_vaik_certificate(const VaikCertRequest& req, x509::Issuer& issuer) {
    if (!req.vaik_key) return make_error(rc::kBadParameter, "no vAIK public key to certify");
    auto uuid = canonical_uuid(req.binding.vm_uuid);
    if (!uuid) return uuid.error();
    vtpm::X509Ptr cert(X509_new());
    if (!cert || !X509_set_version(cert.get(), X509_VERSION_3)) return make_error(rc::kFail, "out of memory");
    X509* issuer_cert = const_cast<X509*>(issuer.certificate());
    if (auto r = x509::set_random_serial(cert.get()); !r) return r.error();
    if (auto r = x509::set_validity(cert.get(), req.days); !r) return r.error();
    if (!X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert)))
        return make_error(rc::kFail, "could not set the issuer name");
    const std::string cn = "vAIK " + *uuid;
    if (!X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(cn.data()), static_cast<int>(cn.size()),
                                    -1, 0))
        return make_error(rc::kFail, vtpm::ossl_error("could not set the subject"));
    if (!X509_set_pubkey(cert.get(), req.vaik_key))
        return make_error(rc::kFail, vtpm::ossl_error("could not set the public key"));
    const std::string san = "URI:urn:uuid:" + *uuid;
    for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
                              {NID_key_usage, "critical,digitalSignature"},
                              {NID_ext_key_usage, kOidAikCertificate},
                              {NID_subject_alt_name, san.c_str()},
                              {NID_authority_key_identifier, "keyid:always"}})
        if (auto r = x509::add_conf_ext(cert.get(), issuer_cert, nid, value); !r) return r.error();
    const Bytes value = der::sequence(der::cat({der::utf8(*uuid), octets(req.binding.user_binding),
                                                der::integer(req.binding.generation), octets(req.binding.vaik_name),
                                                octets(req.binding.authkey_name)}));
    if (auto r = x509::add_raw_ext(cert.get(), kOidVtpmIdentity, value, false); !r) return r.error();
    if (auto r = issuer.sign(cert.get()); !r) return r.error();
    return x509::to_der(cert.get());
}

Result<VaikBinding> read_vaik_binding(const X509* cert) {
    auto ext = x509::extension_value(cert, kOidVtpmIdentity);
    if (!ext) return make_error(rc::kBadParameter, "the certificate has no vTPM identity extension");
    const Error malformed{rc::kBadParameter, "the vTPM identity extension is malformed"};
    DerReader outer(*ext);
    ByteView seq, uuid, user, gen, vaik, auth;
    if (!outer.next(0x30, seq) || !outer.done()) return malformed;
    DerReader in(seq);
    if (!in.next(0x0c, uuid) || !in.next(0x04, user) || !in.next(0x02, gen) || !in.next(0x04, vaik) ||
        !in.next(0x04, auth) || !in.done())
        return malformed;
    if (gen.empty() || gen.size() > 9 || (gen[0] & 0x80)) return malformed;
    VaikBinding b;
    for (uint8_t x : gen) b.generation = b.generation << 8 | x;
    if (gen.size() == 9 && gen[0] != 0) return malformed;
    b.vm_uuid.assign(uuid.begin(), uuid.end());
    b.user_binding.assign(user.begin(), user.end());
    b.vaik_name.assign(vaik.begin(), vaik.end());
    b.authkey_name.assign(auth.begin(), auth.end());
    return b;
}

}  // namespace vtpm::attest
