#include "issuance/host_identity.hpp"

#include <openssl/objects.h>

#include <sstream>

#include "tpm/objects.hpp"
#include "hosttpm/host_ops.hpp"
#include "x509/local_ca.hpp"
#include "util/durable_file.hpp"

namespace vtpm::issuance {

Result<std::unique_ptr<AuthKeyIssuer>> AuthKeyIssuer::open(HostRoot& root) {
    const std::string& host_dir = root.dir();
    auto cert = x509::read_pem_certificate(host_dir + "/" + hoststate::kAuthKeyCertFile);
    if (!cert) return make_error(rc::kFail, "no AuthKey certificate in " + host_dir + " (run vtpm-host enroll): " +
                                                cert.error().message);
    auto chain = x509::read_pem_certificates(host_dir + "/" + hoststate::kCaChainFile);
    if (!chain) return chain.error();
    return std::make_unique<AuthKeyIssuer>(root, std::move(*cert), std::move(*chain));
}

std::vector<const X509*> AuthKeyIssuer::chain() const {
    std::vector<const X509*> out{cert_.get()};
    for (int i = 0; i < sk_X509_num(chain_.get()); ++i) out.push_back(sk_X509_value(chain_.get(), i));
    return out;
}

std::string AuthKeyIssuer::describe() const { return "hardware-TPM AuthKey (" + root_.dir() + ")"; }

Result<void> AuthKeyIssuer::sign(X509* cert) {
    // The signature algorithm sits both in the TBS and outside it; set both,
    // encode the TBS, let the TPM sign its digest, put the signature in.
    const X509_ALGOR* inner = X509_get0_tbs_sigalg(cert);
    const ASN1_BIT_STRING* sig = nullptr;
    const X509_ALGOR* outer = nullptr;
    X509_get0_signature(&sig, &outer, cert);
    for (const X509_ALGOR* a : {inner, outer})
        if (!X509_ALGOR_set0(const_cast<X509_ALGOR*>(a), OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF, nullptr))
            return make_error(rc::kFail, "cannot set the signature algorithm");
    unsigned char* tbs = nullptr;
    const int n = i2d_re_X509_tbs(cert, &tbs);
    if (n <= 0) return make_error(rc::kFail, vtpm::ossl_error("cannot encode the certificate body"));
    const Bytes digest = sha256_bytes(ByteView(tbs, static_cast<size_t>(n)));
    OPENSSL_free(tbs);
    auto tpm_sig = root_.sign_digest(digest);
    if (!tpm_sig) return tpm_sig.error();
    if (tpm_sig->sigAlg != TPM2_ALG_ECDSA) return make_error(rc::kFail, "the AuthKey did not sign with ECDSA");
    auto der = tpm::ecdsa_der(tpm_sig->signature.ecdsa);
    if (!der) return der.error();
    auto* bits = const_cast<ASN1_BIT_STRING*>(sig);
    if (!ASN1_BIT_STRING_set(bits, der->data(), static_cast<int>(der->size())))
        return make_error(rc::kFail, "out of memory");
    bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
    bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
    return {};
}

}  // namespace vtpm::issuance
