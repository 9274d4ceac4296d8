#include "issuance/issue.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <tss2/tss2_mu.h>

#include "attest/credential.hpp"
#include "attest/vaik_cert.hpp"
#include "x509/cert_check.hpp"
#include "x509/tcg_cert.hpp"
#include "hoststate/ek_bindings.hpp"
#include "hoststate/identity_records.hpp"
#include "issuance/ek_policy.hpp"
#include "issuance/host_identity.hpp"
#include "issuance/vtpm_identity.hpp"
#include "tpm/objects.hpp"
#include "tpm/public_key.hpp"

namespace vtpm::issuance {

namespace {

constexpr std::time_t kChallengeSeconds = 120;
constexpr size_t kMaxOpenChallenges = 256;

}  // namespace

namespace {

// An AuthKey-issued EK certificate: the AuthKey signs one for any key it is
// sent, so it vouches for a vTPM only with the key bound to the VM it names.
Result<void> check_bound_ek(const X509* cert, const std::string& uuid, const hoststate::EkBinding& bound) {
    auto cn = subject_cn(cert);
    if (!cn) return make_error(rc::kFail, "the vTPM's EK certificate from this host's AuthKey: " + cn.error().message);
    auto named = vm_uuid_in(*cn);
    if (!named) return make_error(rc::kFail, "the vTPM's EK certificate: " + named.error().message);
    if (!*named) return make_error(rc::kFail, "the vTPM's EK certificate from this host's AuthKey names no VM UUID");
    if (**named != uuid) return make_error(rc::kFail, "the EK certificate is for VM " + **named + ", not VM " + uuid);
    EVP_PKEY* key = X509_get0_pubkey(cert);
    if (!key) return make_error(rc::kFail, "the vTPM's EK certificate has no usable public key");
    auto family = ek_key_family(key);
    if (!family) return make_error(rc::kFail, "the vTPM's EK certificate: " + family.error().message);
    auto digest = spki_digest(key);
    if (!digest) return digest.error();
    if (bound[*family] != *digest)
        return make_error(rc::kFail, "the vTPM's EK certificate holds a key that is not the EK bound to VM " + uuid +
                                         " (re-manufactured since, or not made by vtpm-setup)");
    return {};
}

}  // namespace

Result<hostapi::VaikChallengeReply> VaikChallenges::open(const hostapi::VaikChallengeRequest& req,
                                                         const EkIssuers& trusted, const hoststate::EkBinding& bound) {
    const std::string uuid = format_uuid(req.vm);
    auto cert = x509::parse_der_certificate(req.ek_cert);
    if (!cert) return make_error(rc::kBadParameter, "the vTPM's EK certificate: " + cert.error().message);
    if (trusted.authkey.empty() && trusted.local_ca.empty())
        return make_error(rc::kFail, "no issuers of vTPM EK certificates are trusted (vtpm-hostd --ek-ca, or "
                                     "an enrolled AuthKey)");
    auto verify = [&cert](const std::vector<const X509*>& issuers) {
        const auto bundle = x509::split_roots(issuers);
        return x509::verify_chain(cert->get(), bundle.intermediates,
                                  bundle.roots.empty() ? bundle.intermediates : bundle.roots);
    };
    // The AuthKey's chain first: were --ek-ca to name the privacy CA too, its
    // certificates would still be held to the binding.
    auto by_authkey = trusted.authkey.empty() ? Result<std::vector<std::string>>(make_error(rc::kFail, "no AuthKey"))
                                              : verify(trusted.authkey);
    if (by_authkey) {
        if (auto r = check_bound_ek(cert->get(), uuid, bound); !r) return r.error();
    } else {
        if (trusted.local_ca.empty())
            return make_error(rc::kFail, "the vTPM's EK certificate is not trusted: " + by_authkey.error().message);
        auto chain = verify(trusted.local_ca);
        if (!chain) return make_error(rc::kFail, "the vTPM's EK certificate is not trusted: " + chain.error().message);
        // vtpm-setup --vmid puts "name:UUID" (libvirt) in the subject: it must be this VM.
        const std::string subject = x509::summarize(cert->get());
        for (size_t i = 0; i + 36 <= subject.size(); ++i)
            if (auto u = canonical_uuid(subject.substr(i, 36)); u && *u != uuid)
                return make_error(rc::kFail, "the EK certificate is for VM " + *u + ", not VM " + uuid);
    }
    auto vaik_pub = tpm::unmarshal_public(req.vaik_public);
    if (!vaik_pub) return make_error(rc::kBadParameter, "the vAIK public area: " + vaik_pub.error().message);
    auto name = tpm::object_name(*vaik_pub);
    if (!name) return name.error();
    vtpm::PkeyPtr ek(X509_get_pubkey(cert->get()));
    SecureBytes secret(32);
    std::array<uint8_t, 16> id{};
    if (RAND_bytes(secret.data(), 32) != 1 || RAND_bytes(id.data(), 16) != 1)
        return make_error(rc::kFail, "no random bytes");
    auto cred = attest::make_credential(ek.get(), *name, secret);
    if (!cred) return cred.error();
    const std::time_t now = std::time(nullptr);
    std::erase_if(open_, [now](const auto& e) { return e.second.expires < now; });
    if (open_.size() >= kMaxOpenChallenges) return make_error(rc::kFail, "too many open vAIK challenges");
    hostapi::VaikChallengeReply out;
    out.id = id;
    Bytes blob(sizeof(TPM2B_ID_OBJECT)), enc(sizeof(TPM2B_ENCRYPTED_SECRET));
    size_t a = 0, b = 0;
    if (Tss2_MU_TPM2B_ID_OBJECT_Marshal(&cred->blob, blob.data(), blob.size(), &a) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal(&cred->secret, enc.data(), enc.size(), &b) != TSS2_RC_SUCCESS)
        return make_error(rc::kFail, "cannot marshal the credential");
    blob.resize(a);
    enc.resize(b);
    out.credential_blob = std::move(blob);
    out.encrypted_secret = std::move(enc);
    open_[id] = Entry{req.vm, *name, std::move(secret), now + kChallengeSeconds};
    return out;
}

Result<void> VaikChallenges::redeem(const hostapi::VaikRequest& req) {
    auto it = open_.find(req.challenge);
    if (it == open_.end() || it->second.expires < std::time(nullptr))
        return make_error(rc::kFail, "no open vAIK challenge with that id (expired, answered, or never made)");
    Entry e = std::move(it->second);
    open_.erase(it);  // one answer per challenge, right or wrong
    auto pub = tpm::unmarshal_public(req.vaik_public);
    if (!pub) return make_error(rc::kBadParameter, "the vAIK public area: " + pub.error().message);
    auto name = tpm::object_name(*pub);
    if (!name) return name.error();
    if (e.vm != req.vm || e.vaik_name != *name)
        return make_error(rc::kFail, "the challenge was made for another VM or vAIK");
    if (req.activated.size() != e.secret.size() ||
        CRYPTO_memcmp(req.activated.data(), e.secret.data(), e.secret.size()) != 0)
        return make_error(rc::kFail, "the vAIK credential was not opened: the vAIK is not in the vTPM of that EK");
    return {};
}

Result<hostapi::VaikReply> sign_vaik_identity(HostRoot& root, VaikChallenges& challenges, IdentityBook& records,
                                              const hostapi::VaikRequest& req) {
    const std::string uuid = format_uuid(req.vm);
    if (req.nonce.size() < 16 || req.nonce.size() > 64)
        return make_error(rc::kBadParameter, "the nonce must be 16 to 64 bytes");
    if (req.days == 0 || req.days > 3650) return make_error(rc::kBadParameter, "validity must be 1 to 3650 days");
    auto vaik_pub = tpm::unmarshal_public(req.vaik_public);
    if (!vaik_pub) return make_error(rc::kBadParameter, "the vAIK public area: " + vaik_pub.error().message);
    // Only a key made from our vAIK template is certified as a vAIK.
    const TPMT_PUBLIC want = vaik_template();
    if (vaik_pub->type != want.type || vaik_pub->objectAttributes != want.objectAttributes ||
        vaik_pub->nameAlg != want.nameAlg)
        return make_error(rc::kBadParameter, "the key offered as vAIK is not a restricted, non-migratable signing "
                                             "key of the vAIK template");
    auto vaik_name = tpm::object_name(*vaik_pub);
    if (!vaik_name) return vaik_name.error();
    if (auto r = challenges.redeem(req); !r) return r.error();
    auto issuer = AuthKeyIssuer::open(root);
    if (!issuer) return issuer.error();

    // Uniqueness: what this host issued before against what the vTPM holds.
    std::optional<hoststate::IdentityRecord> rec;
    if (auto r = records.load(uuid))
        rec = *r;
    else if (r.code() != rc::kRetry) return r.error();
    std::optional<Bytes> existing_name;
    if (req.vaik_existed) existing_name = *vaik_name;
    if (auto clash = hoststate::generation_clash(rec, req.vtpm_generation, existing_name); clash && !req.adopt)
        return make_error(rc::kFail, "identity clash for VM " + uuid + ": " + *clash +
                                         "; refusing to issue a second identity (--adopt overrides after checking)");
    const uint64_t gen = hoststate::next_identity_generation(rec, req.vtpm_generation);

    // Fresh CertAuthKey for this user and nonce, and the host PCR inputs.
    const Bytes binding = tpm::user_binding(req.user_cert, req.nonce);
    // The quote says what the host PCRs hold now; the owner's approval of
    // that digest says the host may vouch in that state.
    auto certify = root.certify_authkey(binding);
    if (!certify) return certify.error();
    auto host_quote = root.quote_host_pcrs(binding);
    if (!host_quote) return host_quote.error();
    const auto& policy = root.policy();
    // The digest the bundle names is the one the quote signed: no second
    // PCR read that could see another state.
    auto quoted = tpm::parse_attest(host_quote->attest);
    if (!quoted || quoted->type != TPM2_ST_ATTEST_QUOTE)
        return make_error(rc::kFail, "the host TPM's quote of its PCRs does not parse");
    const auto& qd = quoted->attested.quote.pcrDigest;
    const Bytes host_digest(qd.buffer, qd.buffer + qd.size);
    const hoststate::Approval* approval = nullptr;
    for (const auto& a : policy.approvals())
        if (a.approval.pcr_digest == host_digest) approval = &a.approval;
    if (!approval)
        return make_error(rc::kFail, "the host PCRs are in a state the owner has not approved (they changed after vtpm-hostd started); ask again or run vtpm-host authorize");
    attest::IdentityBundle bundle;
    auto ak_pub = tpm::marshal_public(root.authkey_public());
    auto owner_pub = tpm::marshal_public(policy.owner());
    auto sel = tpm::marshal_pcr_selection(policy.pcrs());
    if (!ak_pub || !sel || !owner_pub) return make_error(rc::kFail, "cannot marshal the AuthKey, owner key or PCR selection");
    bundle.authkey_public = *ak_pub;
    bundle.certify_attest = certify->attest;
    bundle.certify_signature = certify->signature;
    bundle.host_pcr_selection = *sel;
    bundle.host_pcr_digest = host_digest;
    bundle.generation = gen;
    bundle.owner_public = *owner_pub;
    bundle.owner_approval = approval->authkey_signature;
    bundle.host_quote_attest = host_quote->attest;
    bundle.host_quote_signature = host_quote->signature;

    auto vaik_key = tpm::pkey_from_tpm_public(*vaik_pub);
    if (!vaik_key) return vaik_key.error();
    attest::VaikCertRequest creq;
    creq.vaik_key = vaik_key->get();
    creq.binding = {uuid, binding, gen, *vaik_name, root.authkey_name()};
    creq.days = static_cast<int>(req.days);
    auto cert = attest::issue_vaik_certificate(creq, **issuer);
    if (!cert) return cert.error();
    // Pending until the vTPM holds it: a vTPM that never gets it is then
    // told apart from one that was rolled back.
    hoststate::IdentityRecord next{uuid, rec ? rec->generation : 0, rec ? rec->vaik_name : Bytes{}, gen};
    if (auto r = records.save(next); !r) return r.error();
    return hostapi::VaikReply{std::move(*cert), attest::encode_bundle(bundle), gen};
}

Result<void> confirm_vaik_identity(IdentityBook& records, const hostapi::VaikConfirm& c) {
    const std::string uuid = format_uuid(c.vm);
    auto rec = records.load(uuid);
    if (!rec && rec.code() != rc::kRetry) return rec.error();
    if (!rec) return make_error(rc::kFail, "no identity was issued for VM " + uuid);
    if (!rec->pending || *rec->pending != c.generation)
        return make_error(rc::kFail, "VM " + uuid + ": generation " + std::to_string(c.generation) +
                                         " is not the one pending");
    // The name is what later issuances and verifiers compare the vTPM's vAIK
    // with: an empty or malformed one would switch that comparison off.
    // TPM2_ALG_SHA256 ‖ digest: the vAIK template's nameAlg (vaik_template()).
    if (c.vaik_name.size() != 2 + TPM2_SHA256_DIGEST_SIZE || load_be16(c.vaik_name.data()) != TPM2_ALG_SHA256)
        return make_error(rc::kBadParameter, "VM " + uuid + ": the confirmed vAIK name is not a SHA-256 TPM name");
    return records.save({uuid, c.generation, c.vaik_name, std::nullopt});
}

Result<IssueResult> issue_identity(const hostapi::Client& hostd, VtpmChannel& vtpm, const IssueRequest& req) {
    IssueResult out;
    auto uuid = canonical_uuid(req.vm_uuid);
    if (!uuid) return uuid.error();
    auto raw_uuid = parse_uuid(*uuid);
    if (!raw_uuid) return raw_uuid.error();
    if (req.nonce.size() < 16 || req.nonce.size() > 64)
        return make_error(rc::kBadParameter, "the nonce must be 16 to 64 bytes");
    auto existing = read_vaik(vtpm);
    if (!existing) return existing.error();
    auto vgen = read_generation(vtpm);
    if (!vgen) return vgen.error();
    TPMT_PUBLIC vaik_pub{};
    if (*existing) {
        vaik_pub = **existing;
    } else {
        auto created = create_vaik(vtpm);
        if (!created) return created.error();
        vaik_pub = *created;
        out.vaik_created = true;
    }
    auto vp = tpm::marshal_public(vaik_pub);
    if (!vp) return vp.error();
    // Proof for the daemon that the vAIK lives in this vTPM: open its
    // credential with the EK its certificate names.
    auto ek_cert = read_nv(vtpm, tpm::kNvRsa2048EkCert);
    if (!ek_cert)
        return make_error(rc::kFail, "the vTPM has no RSA EK certificate (NV " + hex32(tpm::kNvRsa2048EkCert) +
                                         "): " + ek_cert.error().message + "; manufacture it with --create-ek-cert");
    auto challenge = hostd.vaik_challenge({*raw_uuid, *vp, *ek_cert});
    if (!challenge) return challenge.error();
    auto activated = activate_vaik_credential(vtpm, challenge->credential_blob, challenge->encrypted_secret);
    if (!activated) return activated.error();
    hostapi::VaikRequest hreq;
    hreq.challenge = challenge->id;
    hreq.activated = std::move(*activated);
    hreq.vm = *raw_uuid;
    hreq.user_cert = req.user_cert_der;
    hreq.nonce = req.nonce;
    hreq.vaik_public = *vp;
    hreq.vtpm_generation = *vgen;
    hreq.vaik_existed = existing->has_value();
    hreq.days = static_cast<uint32_t>(req.days);
    hreq.adopt = req.adopt;
    auto issued = hostd.issue_vaik(hreq);
    if (!issued) return issued.error();

    // Into the vTPM: generation, certificate, bundle; then make it durable.
    Bytes gen_bytes;
    put_be64(gen_bytes, issued->generation);
    for (auto [index, data] : {std::pair{tpm::kNvGeneration, ByteView(gen_bytes)},
                               {tpm::kNvVaikCert, ByteView(issued->certificate)},
                               {tpm::kNvIdentityBundle, ByteView(issued->bundle)}})
        if (auto r = write_nv(vtpm, index, data); !r) return r.error();
    if (auto r = vtpm.commit(); !r) return r.error();
    auto name = tpm::object_name(vaik_pub);
    if (!name) return name.error();
    if (auto r = hostd.confirm_vaik({*raw_uuid, issued->generation, *name}); !r) return r.error();

    out.vaik_cert_der = std::move(issued->certificate);
    out.bundle = std::move(issued->bundle);
    out.vaik_public = std::move(*vp);
    out.generation = issued->generation;
    return out;
}

}  // namespace vtpm::issuance
