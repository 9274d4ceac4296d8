#include "x509/cert_check.hpp"

namespace vtpm::x509 {

namespace {

std::string name_text(const X509_NAME* n) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio) return {};
    X509_NAME_print_ex(bio.get(), n, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    std::string s(data, static_cast<size_t>(len));
    return s.empty() ? "(empty subject)" : s;
}

std::string time_text(const ASN1_TIME* t) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio) return {};
    ASN1_TIME_print(bio.get(), t);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(len));
}

}  // namespace

Result<std::vector<std::string>> verify_chain(const X509* leaf, const std::vector<const X509*>& untrusted,
                                              const std::vector<const X509*>& trusted) {
    X509StorePtr store(X509_STORE_new());
    X509StackPtr chain_in(sk_X509_new_null());
    X509StoreCtxPtr ctx(X509_STORE_CTX_new());
    if (!store || !chain_in || !ctx) return make_error(rc::kFail, "out of memory");
    for (const X509* t : trusted)
        if (X509_STORE_add_cert(store.get(), const_cast<X509*>(t)) != 1)
            return make_error(rc::kFail, ossl_error("could not add a trusted certificate"));
    for (const X509* u : untrusted) {
        if (X509_up_ref(const_cast<X509*>(u)) != 1) return make_error(rc::kFail, "out of memory");
        sk_X509_push(chain_in.get(), const_cast<X509*>(u));
    }
    // A trusted intermediate (the local CA's issuer) ends the chain too.
    X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
    if (X509_STORE_CTX_init(ctx.get(), store.get(), const_cast<X509*>(leaf), chain_in.get()) != 1)
        return make_error(rc::kFail, ossl_error("could not set up verification"));
    if (X509_verify_cert(ctx.get()) != 1) {
        const int err = X509_STORE_CTX_get_error(ctx.get());
        const X509* at = X509_STORE_CTX_get_current_cert(ctx.get());
        return make_error(rc::kFail, std::string("certificate chain does not verify: ") +
                                         X509_verify_cert_error_string(err) + " (at " +
                                         (at ? name_text(X509_get_subject_name(at)) : std::string("?")) + ")");
    }
    std::vector<std::string> subjects;
    STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
    for (int i = 0; i < sk_X509_num(chain); ++i)
        subjects.push_back(name_text(X509_get_subject_name(sk_X509_value(chain, i))));
    return subjects;
}

TrustBundle split_roots(const std::vector<const X509*>& bundle) {
    TrustBundle out;
    for (const X509* x : bundle) {
        X509* m = const_cast<X509*>(x);  // X509_check_issued takes non-const pointers, changes nothing
        (X509_check_issued(m, m) == X509_V_OK ? out.roots : out.intermediates).push_back(x);
    }
    return out;
}

Result<TcgFields> check_tcg_profile(const X509* cert, CertKind kind) {
    auto f = read_tcg_fields(cert);
    if (!f) return f.error();
    const char* what = kind == CertKind::Ek ? "EK certificate" : "platform certificate";
    if (!f->has_tcg_eku || f->kind != kind)
        return make_error(rc::kFail, std::string(what) + ": the TCG extended key usage is missing");
    if (kind == CertKind::Ek) {
        if (f->tpm.manufacturer.empty() || f->tpm.model.empty() || f->tpm.version.empty())
            return make_error(rc::kFail,
                              "EK certificate: TPM manufacturer, model or version missing in subjectAltName");
        if (!f->spec) return make_error(rc::kFail, "EK certificate: TPMSpecification missing");
    } else if (f->platform.manufacturer.empty() || f->platform.model.empty() || f->platform.version.empty()) {
        return make_error(rc::kFail, "platform certificate: platform manufacturer, model or version missing");
    }
    return f;
}

Result<void> check_certifies_key(const X509* cert, EVP_PKEY* key) {
    EVP_PKEY* pub = X509_get0_pubkey(cert);
    if (!pub || EVP_PKEY_eq(pub, key) != 1)
        return make_error(rc::kFail, "the certificate is not for this key (" + summarize(cert) + ")");
    return {};
}

std::string summarize(const X509* cert) {
    return "subject " + name_text(X509_get_subject_name(cert)) + ", issuer " + name_text(X509_get_issuer_name(cert)) +
           ", valid " + time_text(X509_get0_notBefore(cert)) + " to " + time_text(X509_get0_notAfter(cert));
}

}  // namespace vtpm::x509
