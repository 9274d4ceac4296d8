// The attestation data and the verifier, with every key in software: a
// verifier only sees bytes and signatures, so software-made evidence lets us
// reach each failing step on purpose (including an AuthKey a real
// vtpm-host would never create, e.g. without fixedTPM).
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <tss2/tss2_mu.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "attest/credential.hpp"
#include "attest/event_log.hpp"
#include "attest/evidence.hpp"
#include "attest/vaik_cert.hpp"
#include "attest/verify.hpp"
#include "hoststate/identity_records.hpp"
#include "temp_dir.hpp"
#include "tpm/objects.hpp"
#include "tpm/public_key.hpp"
#include "util/durable_file.hpp"
#include "x509/local_ca.hpp"
#include "x509/tcg_cert.hpp"
#include "x509/x509_build.hpp"

using namespace vtpm;
using namespace vtpm::attest;
using vtpm::PkeyPtr;
using vtpm::X509Ptr;

namespace {

constexpr const char* kUuid = "6c1f8e22-4b6f-4d0e-9a51-0d6c3f1b2a77";

PkeyPtr ec_key() { return PkeyPtr(EVP_EC_gen("P-256")); }

void put_bn(EVP_PKEY* k, const char* param, TPM2B_ECC_PARAMETER& out) {
    BIGNUM* bn = nullptr;
    REQUIRE(EVP_PKEY_get_bn_param(k, param, &bn) == 1);
    out.size = 32;
    REQUIRE(BN_bn2binpad(bn, out.buffer, 32) == 32);
    BN_free(bn);
}

TPMT_PUBLIC tpm_public(EVP_PKEY* k, TPMA_OBJECT attrs, ByteView policy = {}) {
    TPMT_PUBLIC p{};
    p.type = TPM2_ALG_ECC;
    p.nameAlg = TPM2_ALG_SHA256;
    p.objectAttributes = attrs;
    p.authPolicy.size = static_cast<UINT16>(policy.size());
    if (!policy.empty()) std::memcpy(p.authPolicy.buffer, policy.data(), policy.size());
    p.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    p.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    p.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    p.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    put_bn(k, OSSL_PKEY_PARAM_EC_PUB_X, p.unique.ecc.x);
    put_bn(k, OSSL_PKEY_PARAM_EC_PUB_Y, p.unique.ecc.y);
    return p;
}

Bytes tpm_sign(EVP_PKEY* k, ByteView data) {
    vtpm::MdCtxPtr ctx(EVP_MD_CTX_new());
    size_t n = 0;
    REQUIRE(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, k) == 1);
    REQUIRE(EVP_DigestSign(ctx.get(), nullptr, &n, data.data(), data.size()) == 1);
    Bytes der(n);
    REQUIRE(EVP_DigestSign(ctx.get(), der.data(), &n, data.data(), data.size()) == 1);
    const unsigned char* p = der.data();
    ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(n));
    REQUIRE(s);
    TPMT_SIGNATURE sig{};
    sig.sigAlg = TPM2_ALG_ECDSA;
    sig.signature.ecdsa.hash = TPM2_ALG_SHA256;
    sig.signature.ecdsa.signatureR.size = 32;
    sig.signature.ecdsa.signatureS.size = 32;
    BN_bn2binpad(ECDSA_SIG_get0_r(s), sig.signature.ecdsa.signatureR.buffer, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(s), sig.signature.ecdsa.signatureS.buffer, 32);
    ECDSA_SIG_free(s);
    auto m = tpm::marshal_signature(sig);
    REQUIRE(m);
    return *m;
}

Bytes marshal_attest(const TPMS_ATTEST& a) {
    Bytes out(sizeof(TPMS_ATTEST));
    size_t off = 0;
    REQUIRE(Tss2_MU_TPMS_ATTEST_Marshal(&a, out.data(), out.size(), &off) == TSS2_RC_SUCCESS);
    out.resize(off);
    return out;
}

// A self-signed certificate for a key, as the issuer name of CertvAIK.
class SoftIssuer final : public x509::Issuer {
public:
    explicit SoftIssuer(EVP_PKEY* k) : key_(k), cert_(X509_new()) {
        X509_set_version(cert_.get(), X509_VERSION_3);
        REQUIRE(x509::set_random_serial(cert_.get()));
        REQUIRE(x509::set_validity(cert_.get(), 1));
        X509_NAME_add_entry_by_txt(X509_get_subject_name(cert_.get()), "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>("soft AuthKey"), -1, -1, 0);
        X509_set_issuer_name(cert_.get(), X509_get_subject_name(cert_.get()));
        X509_set_pubkey(cert_.get(), k);
        REQUIRE(x509::add_conf_ext(cert_.get(), cert_.get(), NID_subject_key_identifier, "hash"));
        X509_sign(cert_.get(), k, EVP_sha256());
    }
    const X509* certificate() const override { return cert_.get(); }
    std::vector<const X509*> chain() const override { return {cert_.get()}; }
    Result<void> sign(X509* c) override {
        if (X509_sign(c, key_, EVP_sha256()) <= 0) return make_error(rc::kFail, "sign");
        return {};
    }
    std::string describe() const override { return "soft"; }

private:
    EVP_PKEY* key_;
    X509Ptr cert_;
};

struct Knobs {
    TPMA_OBJECT authkey_attrs = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_ADMINWITHPOLICY;
    TPMA_OBJECT vaik_attrs = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                             TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
    std::vector<unsigned> host_pcrs{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    bool wrong_pcr_value = false;
    // The owner approved another host state than the one quoted.
    bool approval_for_other_state = false;
    // The host quote: over another nonce, another digest than the bundle's,
    // or signed by another key than the host AK.
    bool host_quote_stale = false, host_quote_other_digest = false, host_quote_by_other = false;
    // The AuthKey bound to a plain PolicyPCR policy (no owner authorization).
    bool authkey_pcr_only = false;
    // The bundle names another owner key than the one the AuthKey is bound to.
    bool bundle_names_other_owner = false;
    // The host AK certificate's profile: "aik" (as enroll issues it), "none"
    // (no extended key usage) or "ca" (a CA certificate).
    std::string ak_profile = "aik";
    // More quoted PCRs (index below 9, in order) before PCR 9.
    std::vector<std::pair<unsigned, Bytes>> more_pcrs;
};

// Everything a verifier gets: CA, host AK certificate, user, nonce, evidence.
struct World {
    TempDir dir;
    std::unique_ptr<x509::LocalCa> ca;
    PkeyPtr host_ak, authkey, vaik, owner;
    X509Ptr ak_cert;
    Bytes user = Bytes{'u', 's', 'e', 'r'}, nonce = Bytes(20, 0x5a);
    Bytes evidence;
    Bytes pcr9 = Bytes(32, 0x99);
    PkeyPtr issuer_key;
    X509Ptr issuer_cert;  // an intermediate under the CA ("via-authkey")
    VerifyInputs inputs() const {
        VerifyInputs in;
        in.host_ak_cert = ak_cert.get();
        in.ca = ca->chain();
        if (issuer_cert) in.ca.push_back(issuer_cert.get());
        in.user_cert_der = user;
        in.nonce = nonce;
        in.vm_uuid = kUuid;
        in.owner_key = owner.get();
        return in;
    }
};

std::unique_ptr<World> make_world(const Knobs& k = {}) {
    auto w = std::make_unique<World>();
    auto ca = x509::LocalCa::open(w->dir.path.string() + "/ca");
    REQUIRE(ca);
    w->ca = std::move(*ca);
    w->host_ak = ec_key();
    w->authkey = ec_key();
    w->vaik = ec_key();
    w->owner = ec_key();
    // Host AK certificate from the CA.
    w->ak_cert.reset(X509_new());
    X509* c = w->ak_cert.get();
    X509_set_version(c, X509_VERSION_3);
    REQUIRE(x509::set_random_serial(c));
    REQUIRE(x509::set_validity(c, 1));
    X509_set_issuer_name(c, X509_get_subject_name(w->ca->certificate()));
    X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>("host AK"), -1, -1, 0);
    X509_set_pubkey(c, w->host_ak.get());
    X509* ca_cert = const_cast<X509*>(w->ca->certificate());
    if (k.ak_profile == "aik" || k.ak_profile == "vaik" || k.ak_profile == "via-authkey") {
        REQUIRE(x509::add_conf_ext(c, ca_cert, NID_basic_constraints, "critical,CA:FALSE"));
        REQUIRE(x509::add_conf_ext(c, ca_cert, NID_ext_key_usage, "2.23.133.8.3"));
    } else if (k.ak_profile == "ca") {
        REQUIRE(x509::add_conf_ext(c, ca_cert, NID_basic_constraints, "critical,CA:TRUE"));
        REQUIRE(x509::add_conf_ext(c, ca_cert, NID_ext_key_usage, "2.23.133.8.3"));
    }
    // A CertvAIK offered as the host AK's certificate: it carries the vTPM
    // identity extension ("vaik"), or comes from an AuthKey-like issuer
    // under the CA ("via-authkey").
    if (k.ak_profile == "vaik") REQUIRE(x509::add_raw_ext(c, kOidVtpmIdentity, Bytes{0x04, 0x01, 0x00}, false));
    if (k.ak_profile == "via-authkey") {
        w->issuer_key = ec_key();
        w->issuer_cert.reset(X509_new());
        X509* ic = w->issuer_cert.get();
        X509_set_version(ic, X509_VERSION_3);
        REQUIRE(x509::set_random_serial(ic));
        REQUIRE(x509::set_validity(ic, 1));
        X509_set_issuer_name(ic, X509_get_subject_name(ca_cert));
        X509_NAME_add_entry_by_txt(X509_get_subject_name(ic), "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>("AuthKey"), -1, -1, 0);
        X509_set_pubkey(ic, w->issuer_key.get());
        REQUIRE(x509::add_conf_ext(ic, ca_cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
        REQUIRE(x509::add_conf_ext(ic, ca_cert, NID_key_usage, "critical,keyCertSign"));
        REQUIRE(x509::add_conf_ext(ic, ca_cert, NID_ext_key_usage, "2.23.133.8.1,2.23.133.8.2,2.23.133.8.3"));
        REQUIRE(w->ca->sign(ic));
        X509_set_issuer_name(c, X509_get_subject_name(ic));
        REQUIRE(X509_sign(c, w->issuer_key.get(), EVP_sha256()) > 0);
    } else {
        REQUIRE(w->ca->sign(c));
    }

    const Bytes binding = tpm::user_binding(w->user, w->nonce);
    const TPML_PCR_SELECTION sel = tpm::pcr_selection(TPM2_ALG_SHA256, k.host_pcrs);
    const Bytes host_digest(32, 0x11);
    auto policy = tpm::authkey_policy(sel, host_digest);
    REQUIRE(policy);
    auto owner_pub = tpm::owner_public(w->owner.get());
    REQUIRE(owner_pub);
    auto owner_name = tpm::object_name(*owner_pub);
    REQUIRE(owner_name);
    auto bound = tpm::policy_authorize_digest(*owner_name, tpm::kAuthKeyPolicyRef);
    REQUIRE(bound);
    const TPMT_PUBLIC ak_pub = tpm_public(w->authkey.get(), k.authkey_attrs, k.authkey_pcr_only ? policy->digest : *bound);
    auto ak_name = tpm::object_name(ak_pub);
    REQUIRE(ak_name);
    TPMS_ATTEST cert_att{};
    cert_att.magic = TPM2_GENERATED_VALUE;
    cert_att.type = TPM2_ST_ATTEST_CERTIFY;
    cert_att.extraData.size = static_cast<UINT16>(binding.size());
    std::memcpy(cert_att.extraData.buffer, binding.data(), binding.size());
    cert_att.attested.certify.name.size = static_cast<UINT16>(ak_name->size());
    std::memcpy(cert_att.attested.certify.name.name, ak_name->data(), ak_name->size());
    IdentityBundle b;
    b.authkey_public = *tpm::marshal_public(ak_pub);
    b.certify_attest = marshal_attest(cert_att);
    b.certify_signature = tpm_sign(w->host_ak.get(), b.certify_attest);
    b.host_pcr_selection = *tpm::marshal_pcr_selection(sel);
    b.host_pcr_digest = host_digest;
    b.generation = 3;
    // The owner's approval of the AuthKey policy for this host state.
    auto approved = tpm::authkey_policy(sel, k.approval_for_other_state ? Bytes(32, 0x12) : host_digest);
    REQUIRE(approved);
    auto approval = tpm::sign_ecdsa_sha256(w->owner.get(), tpm::approval_message(approved->digest, tpm::kAuthKeyPolicyRef));
    REQUIRE(approval);
    b.owner_approval = *tpm::marshal_signature(*approval);
    b.owner_public = *tpm::marshal_public(*owner_pub);
    if (k.bundle_names_other_owner) {
        auto other = ec_key();
        b.owner_public = *tpm::marshal_public(*tpm::owner_public(other.get()));
    }
    // The host AK's quote of the host PCRs over the same binding.
    TPMS_ATTEST hq{};
    hq.magic = TPM2_GENERATED_VALUE;
    hq.type = TPM2_ST_ATTEST_QUOTE;
    const Bytes hq_data = k.host_quote_stale ? Bytes(32, 0) : binding;
    hq.extraData.size = static_cast<UINT16>(hq_data.size());
    std::memcpy(hq.extraData.buffer, hq_data.data(), hq_data.size());
    hq.attested.quote.pcrSelect = sel;
    hq.attested.quote.pcrDigest.size = 32;
    std::memset(hq.attested.quote.pcrDigest.buffer, k.host_quote_other_digest ? 0x13 : 0x11, 32);
    b.host_quote_attest = marshal_attest(hq);
    auto other_ak = ec_key();
    b.host_quote_signature = tpm_sign(k.host_quote_by_other ? other_ak.get() : w->host_ak.get(), b.host_quote_attest);

    const TPMT_PUBLIC vaik_pub = tpm_public(w->vaik.get(), k.vaik_attrs);
    auto vaik_name = tpm::object_name(vaik_pub);
    REQUIRE(vaik_name);
    SoftIssuer issuer(w->authkey.get());
    VaikCertRequest req;
    req.vaik_key = w->vaik.get();
    req.binding = {kUuid, binding, 3, *vaik_name, *ak_name};
    auto cert = issue_vaik_certificate(req, issuer);
    REQUIRE(cert);

    Evidence ev;
    ev.vaik_cert = *cert;
    ev.vaik_public = *tpm::marshal_public(vaik_pub);
    ev.identity_bundle = encode_bundle(b);
    std::vector<unsigned> selected;
    Bytes quoted;
    for (const auto& [index, value] : k.more_pcrs) {
        ev.pcrs.push_back({TPM2_ALG_SHA256, static_cast<uint8_t>(index), value});
        selected.push_back(index);
        quoted.insert(quoted.end(), value.begin(), value.end());
    }
    selected.push_back(9);
    ev.pcrs.push_back({TPM2_ALG_SHA256, 9, w->pcr9});
    TPMS_ATTEST q{};
    q.magic = TPM2_GENERATED_VALUE;
    q.type = TPM2_ST_ATTEST_QUOTE;
    q.extraData.size = static_cast<UINT16>(w->nonce.size());
    std::memcpy(q.extraData.buffer, w->nonce.data(), w->nonce.size());
    q.attested.quote.pcrSelect = tpm::pcr_selection(TPM2_ALG_SHA256, selected);
    quoted.insert(quoted.end(), w->pcr9.begin(), w->pcr9.end());
    if (k.wrong_pcr_value) quoted[0] ^= 1;
    const Bytes d = sha256_bytes(quoted);
    q.attested.quote.pcrDigest.size = 32;
    std::memcpy(q.attested.quote.pcrDigest.buffer, d.data(), 32);
    ev.quote_attest = marshal_attest(q);
    ev.quote_signature = tpm_sign(w->vaik.get(), ev.quote_attest);
    w->evidence = encode_evidence(ev);
    return w;
}

std::string failed(const World& w, const VerifyInputs& in) { return verify_evidence(in, w.evidence).failed_step; }

struct LogEvent {
    uint32_t pcr;
    Bytes digest;             // SHA-256
    uint32_t type = 0xd;      // EV_IPL
    Bytes data = {'h', 'i'};  // event data
};

Bytes log_with(std::vector<LogEvent> events) {
    Bytes spec = {'S', 'p', 'e', 'c', ' ', 'I', 'D', ' ', 'E', 'v', 'e', 'n', 't', '0', '3', 0};
    const uint8_t rest[] = {0, 0, 0, 0, 0, 2, 0, 2, 1, 0, 0, 0, 0x0b, 0, 32, 0, 0};
    spec.insert(spec.end(), rest, rest + sizeof rest);
    Bytes log = {0, 0, 0, 0, 3, 0, 0, 0};
    log.insert(log.end(), 20, 0);
    log.push_back(static_cast<uint8_t>(spec.size()));
    log.insert(log.end(), 3, 0);
    log.insert(log.end(), spec.begin(), spec.end());
    for (const auto& e : events) {
        const uint8_t hdr[] = {static_cast<uint8_t>(e.pcr), 0, 0, 0, static_cast<uint8_t>(e.type), 0, 0, 0, 1, 0, 0, 0,
                               0x0b, 0};
        log.insert(log.end(), hdr, hdr + sizeof hdr);
        log.insert(log.end(), e.digest.begin(), e.digest.end());
        const uint8_t size[] = {static_cast<uint8_t>(e.data.size()), 0, 0, 0};
        log.insert(log.end(), size, size + sizeof size);
        log.insert(log.end(), e.data.begin(), e.data.end());
    }
    return log;
}

}  // namespace

TEST_CASE("the verifier fails closed on its own inputs and on a host AK certificate of another purpose") {
    auto w = make_world();
    VerifyInputs in = w->inputs();
    in.nonce = Bytes(15, 0x5a);
    Report r = verify_evidence(in, w->evidence);
    CHECK_FALSE(r.ok);
    CHECK(r.failed_step == "inputs");
    CHECK(report_table(r).find("the nonce has 15 bytes; at least 16 are needed") != std::string::npos);
    in = w->inputs();
    in.vm_uuid.reset();
    r = verify_evidence(in, w->evidence);
    CHECK(r.failed_step == "inputs");
    CHECK(report_json(r).find("no expected VM UUID") != std::string::npos);
    for (const auto& [profile, why] :
         std::vector<std::pair<std::string, std::string>>{{"none", "not for an attestation key"},
                                                          {"ca", "is a CA certificate"},
                                                          {"vaik", "is a vTPM's CertvAIK"},
                                                          {"via-authkey", "issued by a vTPM issuer (an AuthKey)"}}) {
        INFO(profile);
        Knobs k;
        k.ak_profile = profile;
        auto bad = make_world(k);
        const Report rb = verify_evidence(bad->inputs(), bad->evidence);
        CHECK(rb.failed_step == "host-ak-certificate");
        CHECK(report_table(rb).find(why) != std::string::npos);
    }
}

TEST_CASE("a step without its input is reported as NOT VERIFIED, never as passed") {
    auto w = make_world();
    const Report r = verify_evidence(w->inputs(), w->evidence);  // no reference values, no host record
    REQUIRE(r.ok);
    const std::string table = report_table(r), json = report_json(r);
    CHECK(table.find("NOT VERIFIED reference-values") != std::string::npos);
    CHECK(table.find("NOT VERIFIED, for want of input: ") != std::string::npos);
    CHECK(json.find("\"not_verified\":[") != std::string::npos);
    CHECK(json.find("\"reference-values\"") != std::string::npos);
    CHECK(json.find("\"status\":\"skip\"") == std::string::npos);
}

TEST_CASE("software-made evidence verifies, step by step") {
    auto w = make_world();
    const Report r = verify_evidence(w->inputs(), w->evidence);
    INFO(report_table(r));
    CHECK(r.ok);
    CHECK(r.vm_uuid == kUuid);
    CHECK(r.generation == 3);
    CHECK(report_json(r).find("\"ok\":true") != std::string::npos);
}

TEST_CASE("each broken link is named") {
    SECTION("AuthKey without fixedTPM") {
        Knobs k;
        k.authkey_attrs &= ~TPMA_OBJECT_FIXEDTPM;
        auto w = make_world(k);
        const Report r = verify_evidence(w->inputs(), w->evidence);
        CHECK(r.failed_step == "authkey-attributes");
        CHECK(report_table(r).find("lacks fixedTPM") != std::string::npos);
    }
    SECTION("AuthKey usable with its plain auth value") {
        Knobs k;
        k.authkey_attrs |= TPMA_OBJECT_USERWITHAUTH;
        auto w = make_world(k);
        CHECK(failed(*w, w->inputs()) == "authkey-attributes");
    }
    SECTION("AuthKey bound to too few host PCRs") {
        Knobs k;
        k.host_pcrs = {0, 7};
        auto w = make_world(k);
        CHECK(failed(*w, w->inputs()) == "authkey-policy");
        auto in = w->inputs();
        in.required_host_pcrs = {0, 7};
        CHECK(failed(*w, in).empty());
    }
    SECTION("AuthKey bound to PCR values, not to the owner's approvals") {
        Knobs k;
        k.authkey_pcr_only = true;
        auto w = make_world(k);
        CHECK(failed(*w, w->inputs()) == "authkey-policy");
    }
    SECTION("the owner approved another host state than the quoted one") {
        Knobs k;
        k.approval_for_other_state = true;
        auto w = make_world(k);
        const Report r = verify_evidence(w->inputs(), w->evidence);
        CHECK(r.failed_step == "authkey-policy");
        CHECK(report_table(r).find("did not approve") != std::string::npos);
    }
    SECTION("the bundle names another owner key than the AuthKey's") {
        Knobs k;
        k.bundle_names_other_owner = true;
        auto w = make_world(k);
        CHECK(failed(*w, w->inputs()) == "authkey-policy");
    }
    SECTION("host quote: stale, of another digest, by another key") {
        for (int i = 0; i < 3; ++i) {
            Knobs k;
            (i == 0 ? k.host_quote_stale : i == 1 ? k.host_quote_other_digest : k.host_quote_by_other) = true;
            auto w = make_world(k);
            CHECK(failed(*w, w->inputs()) == "host-quote");
        }
    }
    SECTION("approved by an owner key the verifier does not trust, or by none given") {
        auto w = make_world();
        auto other = ec_key();
        auto in = w->inputs();
        in.owner_key = other.get();
        CHECK(failed(*w, in) == "host-owner");
        in.owner_key = nullptr;
        const Report r = verify_evidence(in, w->evidence);
        CHECK(r.ok);
        CHECK(report_json(r).find("\"host-owner\"") != std::string::npos);  // listed as not verified
    }
    SECTION("host PCR values other than the reference") {
        auto w = make_world();
        auto in = w->inputs();
        in.reference = Reference{{}, Bytes(32, 0x22)};
        CHECK(failed(*w, in) == "authkey-policy");
    }
    SECTION("vAIK that is not restricted") {
        Knobs k;
        k.vaik_attrs &= ~TPMA_OBJECT_RESTRICTED;
        auto w = make_world(k);
        CHECK(failed(*w, w->inputs()) == "cert-vaik-bindings");
    }
    SECTION("PCR values other than the quoted ones") {
        Knobs k;
        k.wrong_pcr_value = true;
        auto w = make_world(k);
        CHECK(failed(*w, w->inputs()) == "quote-pcrs");
    }
    SECTION("untrusted CA") {
        auto w = make_world();
        auto other = make_world();
        auto in = w->inputs();
        in.ca = other->ca->chain();
        CHECK(failed(*w, in) == "host-ak-certificate");
    }
    SECTION("reference values") {
        auto w = make_world();
        auto in = w->inputs();
        auto ref = parse_reference("# comment\nsha256:9 " + to_hex(w->pcr9) + "\n");
        REQUIRE(ref);
        in.reference = *ref;
        CHECK(failed(*w, in).empty());
        ref = parse_reference("sha256:9 " + std::string(64, '0') + "\n");
        REQUIRE(ref);
        in.reference = *ref;
        CHECK(failed(*w, in) == "reference-values");
    }
    SECTION("host record of a newer generation") {
        auto w = make_world();
        auto in = w->inputs();
        in.host_record = hoststate::IdentityRecord{kUuid, 4, {}, std::nullopt};
        CHECK(failed(*w, in) == "uniqueness");
        in.host_record = hoststate::IdentityRecord{kUuid, 3, {}, std::nullopt};
        CHECK(failed(*w, in).empty());
    }
    SECTION("truncated evidence at every length") {
        auto w = make_world();
        for (size_t n = 0; n < w->evidence.size(); n += 7) {
            const Report r = verify_evidence(w->inputs(), ByteView(w->evidence).first(n));
            CHECK_FALSE(r.ok);
        }
    }
}

TEST_CASE("evidence and bundle codecs round trip and reject damage") {
    IdentityBundle b{{1, 2}, {3}, {4}, {5}, {6}, 42, {7}, {8}, {9}, {10}};
    auto d = decode_bundle(encode_bundle(b));
    REQUIRE(d);
    CHECK(d->generation == 42);
    CHECK(d->authkey_public == Bytes{1, 2});
    Bytes enc = encode_bundle(b);
    CHECK_FALSE(decode_bundle(ByteView(enc).first(enc.size() - 1)));
    enc[0] ^= 1;
    CHECK(decode_bundle(enc).error().message.find("bad magic") != std::string::npos);
    Evidence e;
    e.quote_attest = {1};
    e.quote_signature = {2};
    e.vaik_public = {3};
    e.vaik_cert = {4};
    e.identity_bundle = {5};
    e.event_logs = {{6, 7}};
    Bytes ee = encode_evidence(e);
    auto de = decode_evidence(ee);
    REQUIRE(de);
    CHECK(de->event_logs.size() == 1);
    // A repeated single-valued record is an error.
    Bytes dup = ee;
    dup.insert(dup.end(), {0, 1, 0, 0, 0, 1, 9});
    CHECK(decode_evidence(dup).error().message.find("repeated") != std::string::npos);
}

TEST_CASE("event log: parse, replay, StartupLocality, damage") {
    const Bytes d(32, 0xab);
    auto log = parse_event_log(log_with({{8, d}, {8, d}}));
    REQUIRE(log);
    CHECK(log->events.size() == 2);
    auto v = replay_event_log(*log);
    REQUIRE(v);
    Bytes once = sha256_bytes([&] { Bytes x(32, 0); x.insert(x.end(), d.begin(), d.end()); return x; }());
    Bytes twice = once;
    twice.insert(twice.end(), d.begin(), d.end());
    CHECK(v->at({TPM2_ALG_SHA256, 8}) == sha256_bytes(twice));
    // StartupLocality (EV_NO_ACTION on PCR 0): PCR 0 starts at the locality,
    // here 3, instead of zero, and the event itself is not measured.
    Bytes startup = {'S', 't', 'a', 'r', 't', 'u', 'p', 'L', 'o', 'c', 'a', 'l', 'i', 't', 'y', 0, 3};
    auto loc = parse_event_log(log_with({{0, Bytes(32, 0), 3, startup}, {0, d}}));
    REQUIRE(loc);
    auto lv = replay_event_log(*loc);
    REQUIRE(lv);
    Bytes from3(32, 0);
    from3.back() = 3;
    from3.insert(from3.end(), d.begin(), d.end());
    CHECK(lv->at({TPM2_ALG_SHA256, 0}) == sha256_bytes(from3));
    // The same event on PCR 1, or misspelled, changes nothing.
    Bytes misspelled = startup;
    misspelled[0] = 's';
    auto other = replay_event_log(*parse_event_log(log_with({{0, Bytes(32, 0), 3, misspelled}, {0, d}})));
    REQUIRE(other);
    CHECK(other->at({TPM2_ALG_SHA256, 0}) == once);
    // Damage: every truncation of a one-event log is refused, except the one
    // that ends exactly after the header (a log without events).
    Bytes raw = log_with({{8, d}});
    size_t parsed = 0;
    for (size_t n = 0; n < raw.size(); ++n) {
        auto t = parse_event_log(ByteView(raw).first(n));
        if (t) {
            ++parsed;
            CHECK(t->events.empty());
        }
    }
    CHECK(parsed == 1);
    CHECK_FALSE(parse_event_log(ByteView(raw).first(raw.size() - 1)));
}

TEST_CASE("records, generations and clashes") {
    hoststate::IdentityRecord r{kUuid, 7, {1, 2, 3}, 8};
    auto p = hoststate::parse_identity_record(hoststate::format_identity_record(r));
    REQUIRE(p);
    CHECK(p->generation == 7);
    CHECK(p->pending == std::optional<uint64_t>(8));
    CHECK(p->vaik_name == Bytes{1, 2, 3});
    CHECK_FALSE(hoststate::parse_identity_record("generation = x\n"));
    // A key said twice is refused, whichever value would have counted.
    const std::string text = hoststate::format_identity_record(r);
    for (const char* twice : {"generation = 9\n", "pending_generation = 9\n", "vaik_name = 09\n",
                              "vm_uuid = 6f0b0e7e-1c2d-4a5b-8c9d-0e1f2a3b4c5d\n"})
        CHECK_FALSE(hoststate::parse_identity_record(text + twice));
    CHECK_FALSE(hoststate::parse_identity_record(text + "no equals sign\n"));
    CHECK_FALSE(hoststate::generation_clash(std::nullopt, 0, std::nullopt));
    CHECK(hoststate::generation_clash(std::nullopt, 2, std::nullopt));
    CHECK_FALSE(hoststate::generation_clash(r, 7, Bytes{1, 2, 3}));
    CHECK_FALSE(hoststate::generation_clash(r, 8, std::nullopt));  // an interrupted issuance
    CHECK(hoststate::generation_clash(r, 6, std::nullopt)->find("clone or an older copy") != std::string::npos);
    CHECK(hoststate::generation_clash(r, 7, Bytes{9}));
    // The next issuance goes past the pending one: two copies of one state
    // asking in turn (both at 7, generation 8 pending) never get the same.
    CHECK(hoststate::next_identity_generation(std::nullopt, 0) == 1);
    CHECK(hoststate::next_identity_generation(std::nullopt, 4) == 5);
    CHECK(hoststate::next_identity_generation(r, 7) == 9);
    auto settled = r;
    settled.pending.reset();
    CHECK(hoststate::next_identity_generation(settled, 7) == 8);
    CHECK(hoststate::next_identity_generation(settled, 10) == 11);
    TempDir dir;
    auto store = hoststate::IdentityRecords::open_locked(dir.path.string());
    REQUIRE(store);
    const std::string path = store->path_of(kUuid);
    CHECK(read_whole_file(path).code() == rc::kRetry);  // none yet
    REQUIRE(store->save(r));
    auto saved = read_whole_file(path);
    REQUIRE(saved);
    CHECK(
        hoststate::parse_identity_record(std::string_view(reinterpret_cast<const char*>(saved->data()), saved->size()))
            ->generation == 7);
}

TEST_CASE("UUIDs, bindings, policies, credentials") {
    CHECK(*canonical_uuid("6C1F8E22-4B6F-4D0E-9A51-0D6C3F1B2A77") == kUuid);
    CHECK_FALSE(canonical_uuid("6c1f8e22-4b6f-4d0e-9a51-0d6c3f1b2a7"));
    CHECK_FALSE(canonical_uuid("6c1f8e22x4b6f-4d0e-9a51-0d6c3f1b2a77"));
    // H(certuser || nonce); the DER certificate is self-delimiting.
    CHECK(tpm::user_binding(Bytes{0x30, 1, 7}, Bytes{2}) == sha256_bytes(Bytes{0x30, 1, 7, 2}));
    CHECK(tpm::user_binding(Bytes{0x30, 1, 7}, Bytes{2}) != tpm::user_binding(Bytes{0x30, 1, 7}, Bytes{3}));
    const auto sel = tpm::pcr_selection(TPM2_ALG_SHA256, {0, 1, 2, 3, 4, 5, 6, 7});
    auto a = tpm::authkey_policy(sel, Bytes(32, 1)), b = tpm::authkey_policy(sel, Bytes(32, 2));
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->digest != b->digest);
    CHECK(a->branch_sign != a->branch_certify);
    // KDFa output length and determinism; different labels differ.
    CHECK(kdfa_sha256(Bytes(32, 7), "STORAGE", Bytes{1}, {}, 128).size() == 16);
    CHECK(kdfa_sha256(Bytes(32, 7), "STORAGE", {}, {}, 256) == kdfa_sha256(Bytes(32, 7), "STORAGE", {}, {}, 256));
    CHECK(kdfa_sha256(Bytes(32, 7), "STORAGE", {}, {}, 256) != kdfa_sha256(Bytes(32, 7), "INTEGRITY", {}, {}, 256));
    PkeyPtr rsa(EVP_RSA_gen(2048));
    auto cred = make_credential(rsa.get(), Bytes(34, 1), Bytes(32, 2));
    REQUIRE(cred);
    CHECK(cred->secret.size == 256);
    CHECK(cred->blob.size == 2 + 32 + 2 + 32);
    auto ec = ec_key();
    CHECK(make_credential(ec.get(), Bytes(34, 1), Bytes(32, 2)).error().message.find("RSA") != std::string::npos);
}

TEST_CASE("PCR lists") {
    CHECK(*tpm::parse_pcr_list("0,1,7,23") == std::vector<unsigned>{0, 1, 7, 23});
    for (const char* bad : {"", "0,", "24", "1,x", "99999999999999999999999"})
        CHECK(tpm::parse_pcr_list(bad).code() == rc::kBadParameter);
    CHECK(tpm::pcr_list_text(tpm::selected_pcrs(tpm::pcr_selection(TPM2_ALG_SHA256, {7, 0}), TPM2_ALG_SHA256)) ==
          "0,7");
}

// Values the quote did not sign must not feed the later steps: a PCR record
// beside the quoted ones, or a log that leaves an extended PCR unexplained.
TEST_CASE("only quoted PCR values count, and the event log must explain every quoted PCR") {
    auto w = make_world();
    auto ev = decode_evidence(w->evidence);
    REQUIRE(ev);
    Evidence extra = *ev;
    extra.pcrs.push_back({TPM2_ALG_SHA256, 10, Bytes(32, 0x10)});  // never quoted
    auto in = w->inputs();
    Report r = verify_evidence(in, encode_evidence(extra));
    CHECK(r.failed_step == "quote-pcrs");
    CHECK(report_table(r).find("PCR sha256:10, which the quote does not cover") != std::string::npos);
    Evidence twice = *ev;
    twice.pcrs.push_back(twice.pcrs.front());
    CHECK(verify_evidence(in, encode_evidence(twice)).failed_step == "quote-pcrs");

    // PCRs 0, 4 and 9 quoted; a log with only a StartupLocality event
    // explains PCR 0 (zero) and nothing of PCR 4, which was extended: events
    // dropped from a firmware PCR. PCR 9 (after boot) may go unlogged.
    const Bytes startup = {'S', 't', 'a', 'r', 't', 'u', 'p', 'L', 'o', 'c', 'a', 'l', 'i', 't', 'y', 0, 0};
    const Bytes d(32, 0x42);
    Bytes from0(32, 0);
    from0.insert(from0.end(), d.begin(), d.end());
    auto with_log = [&](const Knobs& k, const Bytes& log) {
        auto wk = make_world(k);
        auto e = decode_evidence(wk->evidence);
        REQUIRE(e);
        e->event_logs.push_back(log);
        return verify_evidence(wk->inputs(), encode_evidence(*e));
    };
    Knobs k;
    k.more_pcrs = {{0, Bytes(32, 0)}, {4, Bytes(32, 0x44)}};
    r = with_log(k, log_with({{0, Bytes(32, 0), 3, startup}}));
    CHECK(r.failed_step == "event-log");
    CHECK(report_table(r).find("quoted PCR sha256:4 was extended, but the event log has no event for it") !=
          std::string::npos);
    // PCR 4 explained: passes, and the detail names PCR 9 as not covered.
    k.more_pcrs[1].second = sha256_bytes(from0);
    r = with_log(k, log_with({{0, Bytes(32, 0), 3, startup}, {4, d}}));
    INFO(report_table(r));
    CHECK(r.ok);
    CHECK(report_table(r).find("no events for sha256:9") != std::string::npos);
}

TEST_CASE("reference files: one pin per line, each once, at least one") {
    const std::string h64(64, 'a');
    CHECK(parse_reference("sha256:9 " + h64 + "\n"));
    CHECK_FALSE(parse_reference("sha256:8 " + h64 + " sha256:9 " + h64 + "\n"));
    CHECK_FALSE(parse_reference("sha256:9 " + h64 + "\nsha256:9 " + std::string(64, 'b') + "\n"));
    CHECK_FALSE(parse_reference("host-pcr-digest " + h64 + "\nhost-pcr-digest " + h64 + "\n"));
    CHECK_FALSE(parse_reference(""));
    CHECK_FALSE(parse_reference("# only a comment\n"));
    CHECK(parse_reference("host-pcr-digest " + h64 + "\n"));
}
