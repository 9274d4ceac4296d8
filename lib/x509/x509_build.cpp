#include "x509/x509_build.hpp"

#include <openssl/rand.h>

namespace vtpm::x509 {

Result<Asn1ObjPtr> object(const char* dotted) {
    Asn1ObjPtr o(OBJ_txt2obj(dotted, 1));
    if (!o) return make_error(rc::kFail, ossl_error(std::string("bad OID ") + dotted));
    return o;
}

Result<void> add_raw_ext(X509* cert, const char* dotted, ByteView value, bool critical) {
    auto o = object(dotted);
    if (!o) return o.error();
    Asn1OctetPtr os(ASN1_OCTET_STRING_new());
    if (!os || !ASN1_OCTET_STRING_set(os.get(), value.data(), static_cast<int>(value.size())))
        return make_error(rc::kFail, "out of memory");
    X509ExtPtr ext(X509_EXTENSION_create_by_OBJ(nullptr, o->get(), critical ? 1 : 0, os.get()));
    if (!ext || !X509_add_ext(cert, ext.get(), -1))
        return make_error(rc::kFail, ossl_error(std::string("could not add extension ") + dotted));
    return {};
}

Result<void> add_conf_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    if (!ext || !X509_add_ext(cert, ext.get(), -1))
        return make_error(rc::kFail, ossl_error(std::string("could not add extension ") + OBJ_nid2sn(nid)));
    return {};
}

Result<void> set_random_serial(X509* cert) {
    uint8_t raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1) return make_error(rc::kFail, "no random bytes for the serial number");
    raw[0] &= 0x7f;  // positive
    raw[0] |= 0x40;  // and full length
    BnPtr bn(BN_bin2bn(raw, sizeof(raw), nullptr));
    if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)))
        return make_error(rc::kFail, "could not set the serial number");
    return {};
}

Result<void> set_validity(X509* cert, int days) {
    time_t now = time(nullptr);
    if (!X509_time_adj_ex(X509_getm_notBefore(cert), 0, 0, &now))
        return make_error(rc::kFail, "could not set notBefore");
    if (days < 0) {
        // RFC 5280 4.1.2.5: no well-defined expiration date.
        if (!ASN1_TIME_set_string(X509_getm_notAfter(cert), "99991231235959Z"))
            return make_error(rc::kFail, "could not set notAfter");
    } else if (!X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, &now)) {
        return make_error(rc::kFail, "could not set notAfter");
    }
    return {};
}

Result<Bytes> extension_value(const X509* cert, const char* dotted) {
    auto o = object(dotted);
    if (!o) return o.error();
    const int idx = X509_get_ext_by_OBJ(cert, o->get(), -1);
    if (idx < 0) return make_error(rc::kRetry, std::string("no extension ") + dotted);
    const ASN1_OCTET_STRING* v = X509_EXTENSION_get_data(X509_get_ext(cert, idx));
    return Bytes(v->data, v->data + v->length);
}

}  // namespace vtpm::x509
