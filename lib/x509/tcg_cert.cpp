#include "x509/tcg_cert.hpp"

#include <openssl/pem.h>
#include <openssl/rand.h>

#include <ctime>

#include "x509/der.hpp"
#include "x509/tcg_oids.hpp"
#include "x509/x509_build.hpp"

namespace vtpm::x509 {

using x509::add_conf_ext;
using x509::add_raw_ext;
using x509::object;
using x509::set_random_serial;

namespace {

Result<void> add_utf8_entry(X509_NAME* name, const char* dotted, const std::string& value) {
    auto o = object(dotted);
    if (!o) return o.error();
    if (!X509_NAME_add_entry_by_OBJ(name, o->get(), MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(value.data()),
                                    static_cast<int>(value.size()), -1, 0))
        return make_error(rc::kFail, ossl_error(std::string("could not add ") + dotted));
    return {};
}

// subjectAltName with one directoryName holding three attribute RDNs.
Result<void> add_dirname_san(X509* cert, const char* oid_a, const std::string& a, const char* oid_b,
                             const std::string& b, const char* oid_c, const std::string& c) {
    X509NamePtr dn(X509_NAME_new());
    if (!dn) return make_error(rc::kFail, "out of memory");
    for (auto [o, v] : {std::pair{oid_a, &a}, {oid_b, &b}, {oid_c, &c}})
        if (auto r = add_utf8_entry(dn.get(), o, *v); !r) return r;
    GenNamesPtr names(sk_GENERAL_NAME_new_null());
    GENERAL_NAME* gn = GENERAL_NAME_new();
    if (!names || !gn) {
        GENERAL_NAME_free(gn);
        return make_error(rc::kFail, "out of memory");
    }
    GENERAL_NAME_set0_value(gn, GEN_DIRNAME, dn.release());
    if (!sk_GENERAL_NAME_push(names.get(), gn)) {
        GENERAL_NAME_free(gn);
        return make_error(rc::kFail, "out of memory");
    }
    // Critical as in swtpm's certificates: the subject may be empty.
    if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 1, X509V3_ADD_REPLACE) != 1)
        return make_error(rc::kFail, ossl_error("could not add subjectAltName"));
    return {};
}

Result<Bytes> tpm_specification_attribute(const TpmSpecification& s) {
    auto id = der::oid(oid::kTpmSpecification);
    if (!id) return id.error();
    Bytes value = der::sequence(der::cat({der::utf8(s.family), der::integer(s.level), der::integer(s.revision)}));
    Bytes attribute = der::sequence(der::cat({*id, der::set(value)}));
    return der::sequence(attribute);
}

}  // namespace

Result<Bytes> issue_certificate(const CertRequest& req, Issuer& issuer) {
    if (!req.subject_key) return make_error(rc::kBadParameter, "no public key to certify");
    X509Ptr cert(X509_new());
    if (!cert) return make_error(rc::kFail, "out of memory");
    X509* issuer_cert = const_cast<X509*>(issuer.certificate());
    if (!X509_set_version(cert.get(), X509_VERSION_3)) return make_error(rc::kFail, "out of memory");
    if (auto r = set_random_serial(cert.get()); !r) return r.error();

    if (auto r = x509::set_validity(cert.get(), req.days); !r) return r.error();
    if (!X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert)))
        return make_error(rc::kFail, "could not set the issuer name");
    if (!req.subject_cn.empty() &&
        !X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(req.subject_cn.data()),
                                    static_cast<int>(req.subject_cn.size()), -1, 0))
        return make_error(rc::kFail, ossl_error("could not set the subject"));
    if (!X509_set_pubkey(cert.get(), req.subject_key))
        return make_error(rc::kFail, ossl_error("could not set the public key"));

    const bool ek = req.kind == CertKind::Ek;
    if (auto r = ek ? add_dirname_san(cert.get(), oid::kTpmManufacturer, req.tpm.manufacturer, oid::kTpmModel,
                                      req.tpm.model, oid::kTpmVersion, req.tpm.version)
                    : add_dirname_san(cert.get(), oid::kPlatformManufacturer, req.platform.manufacturer,
                                      oid::kPlatformModel, req.platform.model, oid::kPlatformVersion,
                                      req.platform.version);
        !r)
        return r.error();
    if (auto r = add_conf_ext(cert.get(), issuer_cert, NID_basic_constraints, "critical,CA:FALSE"); !r)
        return r.error();
    if (ek) {
        auto sda = tpm_specification_attribute(req.spec);
        if (!sda) return sda.error();
        if (auto r = add_raw_ext(cert.get(), oid::kSubjectDirectoryAttributes, *sda, false); !r) return r.error();
    }
    if (auto r = add_conf_ext(cert.get(), issuer_cert, NID_authority_key_identifier, "keyid:always"); !r)
        return r.error();

    std::string usage = "critical";
    const bool is_ecc = EVP_PKEY_get_base_id(req.subject_key) == EVP_PKEY_EC;
    if (req.tpm2 && req.allow_signing) usage += ",digitalSignature";
    if (!req.tpm2 || !req.allow_signing || req.decryption) usage += is_ecc ? ",keyAgreement" : ",keyEncipherment";
    if (auto r = add_conf_ext(cert.get(), issuer_cert, NID_key_usage, usage.c_str()); !r) return r.error();
    const std::string eku = ek ? oid::kEkCertificate : oid::kPlatformCertificate;
    if (auto r = add_conf_ext(cert.get(), issuer_cert, NID_ext_key_usage, eku.c_str()); !r) return r.error();

    if (auto r = issuer.sign(cert.get()); !r) return r.error();
    return to_der(cert.get());
}

namespace {

std::string text_of(const ASN1_STRING* s) {
    unsigned char* utf8 = nullptr;
    const int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n < 0) return {};
    std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
    return out;
}

std::string dotted(const ASN1_OBJECT* o) {
    char buf[128];
    const int n = OBJ_obj2txt(buf, sizeof(buf), o, 1);
    return n > 0 ? std::string(buf, static_cast<size_t>(std::min<int>(n, sizeof(buf) - 1))) : std::string();
}

using TypeStackPtr = std::unique_ptr<ASN1_SEQUENCE_ANY, OsslDeleter<+[](ASN1_SEQUENCE_ANY* s) {
                                         sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free);
                                     }>>;

// TPMSpecification out of subjectDirectoryAttributes, if present.
std::optional<TpmSpecification> read_spec(const X509* cert) {
    const int idx = X509_get_ext_by_OBJ(cert, object(oid::kSubjectDirectoryAttributes)->get(), -1);
    if (idx < 0) return std::nullopt;
    const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(X509_get_ext(cert, idx));
    const unsigned char* p = ASN1_STRING_get0_data(data);
    TypeStackPtr attrs(d2i_ASN1_SEQUENCE_ANY(nullptr, &p, ASN1_STRING_length(data)));
    if (!attrs) return std::nullopt;
    for (int i = 0; i < sk_ASN1_TYPE_num(attrs.get()); ++i) {
        const ASN1_TYPE* a = sk_ASN1_TYPE_value(attrs.get(), i);
        if (a->type != V_ASN1_SEQUENCE) continue;
        const unsigned char* q = a->value.sequence->data;
        TypeStackPtr attr(d2i_ASN1_SEQUENCE_ANY(nullptr, &q, a->value.sequence->length));
        if (!attr || sk_ASN1_TYPE_num(attr.get()) != 2) continue;
        const ASN1_TYPE* type = sk_ASN1_TYPE_value(attr.get(), 0);
        const ASN1_TYPE* values = sk_ASN1_TYPE_value(attr.get(), 1);
        if (type->type != V_ASN1_OBJECT || dotted(type->value.object) != oid::kTpmSpecification ||
            values->type != V_ASN1_SET)
            continue;
        q = values->value.set->data;
        TypeStackPtr set(d2i_ASN1_SET_ANY(nullptr, &q, values->value.set->length));
        if (!set || sk_ASN1_TYPE_num(set.get()) != 1) continue;
        const ASN1_TYPE* seq = sk_ASN1_TYPE_value(set.get(), 0);
        if (seq->type != V_ASN1_SEQUENCE) continue;
        q = seq->value.sequence->data;
        TypeStackPtr fields(d2i_ASN1_SEQUENCE_ANY(nullptr, &q, seq->value.sequence->length));
        if (!fields || sk_ASN1_TYPE_num(fields.get()) != 3) continue;
        const ASN1_TYPE* fam = sk_ASN1_TYPE_value(fields.get(), 0);
        const ASN1_TYPE* lvl = sk_ASN1_TYPE_value(fields.get(), 1);
        const ASN1_TYPE* rev = sk_ASN1_TYPE_value(fields.get(), 2);
        if (fam->type != V_ASN1_UTF8STRING || lvl->type != V_ASN1_INTEGER || rev->type != V_ASN1_INTEGER) continue;
        TpmSpecification s;
        s.family = text_of(fam->value.utf8string);
        s.level = static_cast<uint64_t>(ASN1_INTEGER_get(lvl->value.integer));
        s.revision = static_cast<uint64_t>(ASN1_INTEGER_get(rev->value.integer));
        return s;
    }
    return std::nullopt;
}

}  // namespace

bool has_extended_key_usage(const X509* cert, const char* dotted_oid) {
    using EkuPtr = std::unique_ptr<EXTENDED_KEY_USAGE, OsslDeleter<EXTENDED_KEY_USAGE_free>>;
    EkuPtr eku(static_cast<EXTENDED_KEY_USAGE*>(X509_get_ext_d2i(cert, NID_ext_key_usage, nullptr, nullptr)));
    for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku.get()); ++i)
        if (dotted(sk_ASN1_OBJECT_value(eku.get(), i)) == dotted_oid) return true;
    return false;
}

Result<TcgFields> read_tcg_fields(const X509* cert) {
    TcgFields f;
    GenNamesPtr names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
        const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
        if (gn->type != GEN_DIRNAME) continue;
        const X509_NAME* dn = gn->d.directoryName;
        for (int j = 0; j < X509_NAME_entry_count(dn); ++j) {
            const X509_NAME_ENTRY* e = X509_NAME_get_entry(dn, j);
            const std::string o = dotted(X509_NAME_ENTRY_get_object(e));
            const std::string v = text_of(X509_NAME_ENTRY_get_data(e));
            if (o == oid::kTpmManufacturer) f.tpm.manufacturer = v;
            else if (o == oid::kTpmModel) f.tpm.model = v;
            else if (o == oid::kTpmVersion) f.tpm.version = v;
            else if (o == oid::kPlatformManufacturer) f.platform.manufacturer = v;
            else if (o == oid::kPlatformModel) f.platform.model = v;
            else if (o == oid::kPlatformVersion) f.platform.version = v;
        }
    }
    using EkuPtr = std::unique_ptr<EXTENDED_KEY_USAGE, OsslDeleter<EXTENDED_KEY_USAGE_free>>;
    EkuPtr eku(static_cast<EXTENDED_KEY_USAGE*>(X509_get_ext_d2i(cert, NID_ext_key_usage, nullptr, nullptr)));
    for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku.get()); ++i) {
        const std::string o = dotted(sk_ASN1_OBJECT_value(eku.get(), i));
        if (o == oid::kEkCertificate) f.has_tcg_eku = true, f.kind = CertKind::Ek;
        if (o == oid::kPlatformCertificate) f.has_tcg_eku = true, f.kind = CertKind::Platform;
    }
    f.spec = read_spec(cert);
    return f;
}

Result<X509Ptr> parse_der_certificate(ByteView der) {
    const unsigned char* p = der.data();
    X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!cert) return make_error(rc::kBadParameter, ossl_error("not a DER X.509 certificate"));
    if (p != der.data() + der.size())
        return make_error(rc::kBadParameter, "trailing bytes after the DER certificate");
    return cert;
}

Result<Bytes> to_der(const X509* cert) {
    unsigned char* out = nullptr;
    const int n = i2d_X509(cert, &out);
    if (n <= 0) return make_error(rc::kFail, ossl_error("could not encode the certificate"));
    Bytes der(out, out + n);
    OPENSSL_free(out);
    return der;
}

Result<std::string> to_pem(const X509* cert) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1)
        return make_error(rc::kFail, ossl_error("could not write PEM"));
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(n));
}

}  // namespace vtpm::x509
