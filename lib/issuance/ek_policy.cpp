#include "issuance/ek_policy.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "util/ossl.hpp"
#include "util/uuid.hpp"

namespace vtpm::issuance {

namespace {

constexpr size_t kMaxField = 256;

Result<void> check_field(const std::string& value, const char* what, bool required) {
    if (required && value.empty()) return make_error(rc::kBadParameter, std::string("the ") + what + " is empty");
    if (value.size() > kMaxField)
        return make_error(rc::kBadParameter,
                          std::string("the ") + what + " is longer than " + std::to_string(kMaxField) + " bytes");
    for (unsigned char c : value)
        if (c < 0x20 || c == 0x7f)
            return make_error(rc::kBadParameter, std::string("the ") + what + " holds a NUL or control character");
    return {};
}

}  // namespace

Result<std::optional<std::string>> vm_uuid_in(std::string_view subject) {
    std::optional<std::string> found;
    for (size_t i = 0; i + 36 <= subject.size(); ++i) {
        auto u = canonical_uuid(subject.substr(i, 36));
        if (!u) continue;
        if (found && *found != *u)
            return make_error(rc::kBadParameter, "the subject names two VM UUIDs (" + *found + ", " + *u + ")");
        found = *u;
    }
    return found;
}

Result<Digest> spki_digest(EVP_PKEY* key) {
    unsigned char* der = nullptr;
    const int n = i2d_PUBKEY(key, &der);
    if (n <= 0) return make_error(rc::kFail, ossl_error("encoding a public key"));
    const Digest d = sha256(ByteView(der, static_cast<size_t>(n)));
    OPENSSL_free(der);
    return d;
}

Result<hoststate::EkFamily> ek_key_family(EVP_PKEY* key) {
    switch (EVP_PKEY_get_base_id(key)) {
        case EVP_PKEY_RSA: {
            const int bits = EVP_PKEY_get_bits(key);
            if (bits < 2048 || bits > 8192)
                return make_error(rc::kBadParameter,
                                  "an RSA EK of " + std::to_string(bits) + " bits is refused (2048 to 8192)");
            return hoststate::EkFamily::Rsa;
        }
        case EVP_PKEY_EC: {
            char group[64] = {};
            size_t len = 0;
            if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &len) != 1)
                return make_error(rc::kBadParameter, "an EC EK on an unnamed curve is refused");
            const std::string_view g(group, len);
            if (g != "prime256v1" && g != "secp384r1")
                return make_error(rc::kBadParameter,
                                  "an EC EK on curve " + std::string(g) + " is refused (P-256 or P-384)");
            return hoststate::EkFamily::Ec;
        }
        default: return make_error(rc::kBadParameter, "the subject public key is neither RSA nor EC");
    }
}

Result<void> check_tcg_cert_request(const hostapi::TcgCertRequest& req, EVP_PKEY* key) {
    if (auto f = ek_key_family(key); !f) return f.error();
    const bool ek = req.kind == 0;
    const std::pair<const std::string*, const char*> fields[] = {
        {&req.subject_cn, "subject CN"},
        {&req.tpm_manufacturer, "TPM manufacturer"},
        {&req.tpm_model, "TPM model"},
        {&req.tpm_version, "TPM version"},
        {&req.spec_family, "TPM specification family"},
        {&req.platform_manufacturer, "platform manufacturer"},
        {&req.platform_model, "platform model"},
        {&req.platform_version, "platform version"},
    };
    for (size_t i = 0; i < std::size(fields); ++i) {
        // The CN always; the TPM's fields in an EK certificate, the platform's in a platform certificate.
        const bool required = i == 0 || (ek ? i <= 4 : i >= 5);
        if (auto r = check_field(*fields[i].first, fields[i].second, required); !r) return r;
    }
    if (req.days != -1 && (req.days < 1 || req.days > kMaxCertDays))
        return make_error(rc::kBadParameter, "validity of " + std::to_string(req.days) +
                                                 " days is refused (-1 or 1 to " + std::to_string(kMaxCertDays) + ")");
    return {};
}

Result<std::string> subject_cn(const X509* cert) {
    const X509_NAME* name = X509_get_subject_name(cert);
    const int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
        return make_error(rc::kBadParameter, "the certificate's subject has no single CN");
    const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char* utf8 = nullptr;
    const int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n < 0) return make_error(rc::kBadParameter, "the certificate's CN is not text");
    std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
    return out;
}

}  // namespace vtpm::issuance
