#include "issuance/enroll.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cstring>

#include "attest/credential.hpp"
#include "tpm/objects.hpp"
#include "attest/verify.hpp"
#include "hosttpm/host_keys.hpp"
#include "hosttpm/host_ops.hpp"
#include "x509/cert_check.hpp"
#include "x509/local_ca.hpp"
#include "x509/tcg_cert.hpp"
#include "tpm/public_key.hpp"
#include "x509/x509_build.hpp"
#include "issuance/host_identity.hpp"
#include "hoststate/host_files.hpp"

namespace vtpm::issuance {


namespace {

struct CertSpec {
    EVP_PKEY* key;
    std::string cn;
    bool ca;  // the AuthKey issues CertvAIK and EK certificates
    int days;
};

Result<vtpm::X509Ptr> issue(const CertSpec& s, x509::LocalCa& ca) {
    vtpm::X509Ptr cert(X509_new());
    X509* issuer = const_cast<X509*>(ca.certificate());
    if (!cert || !X509_set_version(cert.get(), X509_VERSION_3)) return make_error(rc::kFail, "out of memory");
    if (auto r = x509::set_random_serial(cert.get()); !r) return r.error();
    if (auto r = x509::set_validity(cert.get(), s.days); !r) return r.error();
    if (!X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) ||
        !X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(s.cn.data()), static_cast<int>(s.cn.size()),
                                    -1, 0) ||
        !X509_set_pubkey(cert.get(), s.key))
        return make_error(rc::kFail, vtpm::ossl_error("cannot fill the certificate"));
    const char* bc = s.ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE";
    const char* ku = s.ca ? "critical,digitalSignature,keyCertSign" : "critical,digitalSignature";
    for (auto [nid, value] : {std::pair{NID_basic_constraints, bc}, {NID_key_usage, ku},
                              {NID_subject_key_identifier, "hash"}, {NID_authority_key_identifier, "keyid:always"}})
        if (auto r = x509::add_conf_ext(cert.get(), issuer, nid, value); !r) return r.error();
    // What each may be used for. On the AuthKey (a CA, pathlen:0: it issues
    // only end-entity certificates) the TCG purposes bound what it issues:
    // EK (tcg-kp-EKCertificate), platform and vAIK (tcg-kp-AIKCertificate)
    // certificates, for verifiers that check purposes along the chain.
    const char* eku = s.ca ? "2.23.133.8.1,2.23.133.8.2,2.23.133.8.3" : "2.23.133.8.3";
    if (auto r = x509::add_conf_ext(cert.get(), issuer, NID_ext_key_usage, eku); !r) return r.error();
    if (auto r = ca.sign(cert.get()); !r) return r.error();
    return cert;
}

std::string hostname() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "host";
    return buf;
}

}  // namespace

Result<EnrollResult> enroll_host(HostRoot& root, const std::string& ca_dir, const std::string& ek_roots_pem,
                                 int days) {
    EnrollResult out;
    hosttpm::Esys& tpm = root.tpm();
    const std::string& host_dir = root.dir();

    // 1. The EK certificate chains to the roots the CA trusts.
    auto ek_der = hosttpm::read_nv(tpm, hosttpm::kEkCertNvRsa);
    if (!ek_der) return make_error(rc::kFail, "reading the EK certificate: " + ek_der.error().message);
    const unsigned char* p = ek_der->data();
    vtpm::X509Ptr ek_cert(d2i_X509(nullptr, &p, static_cast<long>(ek_der->size())));
    if (!ek_cert)
        return make_error(rc::kFail, "the EK certificate in NV " + hex32(hosttpm::kEkCertNvRsa) + " does not parse");
    auto roots = x509::read_pem_certificates(ek_roots_pem);
    if (!roots) return roots.error();
    std::vector<const X509*> all;
    for (int i = 0; i < sk_X509_num(roots->get()); ++i) all.push_back(sk_X509_value(roots->get(), i));
    // Roots are self-signed; a file of intermediates only is trusted as given.
    const auto bundle = x509::split_roots(all);
    auto chain = x509::verify_chain(ek_cert.get(), bundle.intermediates,
                                        bundle.roots.empty() ? bundle.intermediates : bundle.roots);
    if (!chain) return make_error(rc::kFail, "the EK certificate is not trusted: " + chain.error().message);
    out.ek_subject = x509::summarize(ek_cert.get());
    vtpm::PkeyPtr ek_key(X509_get_pubkey(ek_cert.get()));
    auto ek = hosttpm::load_ek(tpm);
    if (!ek) return ek.error();
    auto ek_tpm_key = tpm::pkey_from_tpm_public(ek->pub.publicArea);
    if (!ek_tpm_key) return ek_tpm_key.error();
    if (EVP_PKEY_eq(ek_key.get(), ek_tpm_key->get()) != 1)
        return make_error(rc::kFail, "the TPM's EK is not the key of its EK certificate");

    // 2. The AK is in that TPM: only its EK can open a credential bound to the AK's name.
    auto ak = hosttpm::read_persistent(tpm, hosttpm::kHostAkHandle);
    if (!ak) return make_error(rc::kFail, "no host AK: run vtpm-host provision first");
    if (auto r = attest::check_attestation_key(ak->publicArea, "the host AK"); !r) return r.error();
    auto ak_name = tpm::object_name(ak->publicArea);
    if (!ak_name) return ak_name.error();
    uint8_t secret[32];
    if (RAND_bytes(secret, sizeof secret) != 1) return make_error(rc::kFail, "no random bytes");
    auto cred = attest::make_credential(ek_key.get(), *ak_name, ByteView(secret, sizeof secret));
    if (!cred) return cred.error();
    auto answer = hosttpm::activate_credential(tpm, hosttpm::kHostAkHandle, *ek, cred->blob, cred->secret);
    if (!answer) return answer.error();
    if (answer->size() != sizeof secret || CRYPTO_memcmp(answer->data(), secret, sizeof secret) != 0)
        return make_error(rc::kFail, "credential activation returned the wrong secret");

    // 3. The AuthKey: certified by that AK over a fresh CA nonce, non-migratable, PCR-bound.
    uint8_t nonce[32];
    if (RAND_bytes(nonce, sizeof nonce) != 1) return make_error(rc::kFail, "no random bytes");
    auto certify = root.certify_authkey(ByteView(nonce, sizeof nonce));
    if (!certify) return certify.error();
    auto ak_key = tpm::pkey_from_tpm_public(ak->publicArea);
    if (!ak_key) return ak_key.error();
    auto authkey = hosttpm::read_persistent(tpm, hosttpm::kAuthKeyHandle);
    if (!authkey) return make_error(rc::kFail, "no AuthKey: run vtpm-host provision first");
    auto authkey_name = tpm::object_name(authkey->publicArea);
    if (!authkey_name) return authkey_name.error();
    auto att = attest::check_certify(certify->attest, certify->signature, ak_key->get(), *authkey_name,
                                     "the AK's certification of the AuthKey");
    if (!att) return att.error();
    if (att->extraData.size != sizeof nonce || std::memcmp(att->extraData.buffer, nonce, sizeof nonce) != 0)
        return make_error(rc::kFail, "the AK's certification of the AuthKey is not over the CA's nonce");
    if (auto r = attest::check_authkey_attributes(authkey->publicArea); !r) return r.error();

    // 4. Certificates from the privacy CA.
    auto ca = x509::LocalCa::open(ca_dir);
    if (!ca) return ca.error();
    auto authkey_key = tpm::pkey_from_tpm_public(authkey->publicArea);
    if (!authkey_key) return authkey_key.error();
    const std::string host = hostname();
    auto ak_cert = issue({ak_key->get(), "vTPM host AK " + host, false, days}, **ca);
    if (!ak_cert) return ak_cert.error();
    auto auth_cert = issue({authkey_key->get(), "vTPM AuthKey " + host, true, days}, **ca);
    if (!auth_cert) return auth_cert.error();
    std::string chain_pem;
    for (const X509* x : (*ca)->chain()) {
        auto pem = x509::to_pem(x);
        if (!pem) return pem.error();
        chain_pem += *pem;
    }
    for (auto [name, cert] :
         {std::pair{hoststate::kAkCertFile, ak_cert->get()}, {hoststate::kAuthKeyCertFile, auth_cert->get()}}) {
        auto pem = x509::to_pem(cert);
        if (!pem) return pem.error();
        if (auto r = hoststate::write_host_file(host_dir, name, *pem); !r) return r.error();
    }
    if (auto r = hoststate::write_host_file(host_dir, hoststate::kCaChainFile, chain_pem); !r) return r.error();
    out.ak_subject = x509::summarize(ak_cert->get());
    out.authkey_subject = x509::summarize(auth_cert->get());
    return out;
}

}  // namespace vtpm::issuance
