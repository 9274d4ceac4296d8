#include "issuance/issue.hpp"

#include "hoststate/identity_records.hpp"
#include "tpm/objects.hpp"
#include "attest/vaik_cert.hpp"
#include "hosttpm/host_keys.hpp"
#include "hosttpm/host_ops.hpp"
#include "tpm/public_key.hpp"
#include "issuance/host_identity.hpp"
#include "issuance/vtpm_identity.hpp"

namespace vtpm::issuance {

Result<IssueResult> issue_identity(hosttpm::Esys& host, VtpmChannel& vtpm, const IssueRequest& req) {
    IssueResult out;
    auto uuid = canonical_uuid(req.vm_uuid);
    if (!uuid) return uuid.error();
    if (req.nonce.empty() || req.nonce.size() > 64)
        return make_error(rc::kBadParameter, "the nonce must be 1 to 64 bytes");
    auto issuer = AuthKeyIssuer::open(host, req.host_dir);
    if (!issuer) return issuer.error();
    const hoststate::HostConfig* cfg = &(*issuer)->config();

    // Uniqueness first, before anything in the vTPM changes.
    auto records = hoststate::IdentityRecords::open_locked(req.host_dir);
    if (!records) return records.error();
    std::optional<hoststate::IdentityRecord> rec;
    if (auto r = records->load(*uuid)) rec = *r;
    else if (r.code() != rc::kRetry) return r.error();
    auto existing = read_vaik(vtpm);
    if (!existing) return existing.error();
    std::optional<Bytes> existing_name;
    if (*existing) {
        auto n = tpm::object_name(**existing);
        if (!n) return n.error();
        existing_name = *n;
    }
    auto vgen = read_generation(vtpm);
    if (!vgen) return vgen.error();
    if (auto clash = hoststate::generation_clash(rec, *vgen, existing_name); clash && !req.adopt)
        return make_error(rc::kFail, "identity clash for VM " + *uuid + ": " + *clash +
                                         "; refusing to issue a second identity (--adopt overrides after checking)");

    TPMT_PUBLIC vaik_pub{};
    if (*existing) {
        vaik_pub = **existing;
    } else {
        auto created = create_vaik(vtpm);
        if (!created) return created.error();
        vaik_pub = *created;
        out.vaik_created = true;
    }
    auto vaik_name = tpm::object_name(vaik_pub);
    if (!vaik_name) return vaik_name.error();
    const uint64_t gen = std::max(*vgen, rec ? rec->generation : 0) + 1;

    // Host side: fresh CertAuthKey for this user and nonce, the host PCR inputs.
    const Bytes binding = tpm::user_binding(req.user_cert_der, req.nonce);
    auto certify = hosttpm::certify_authkey(host, binding, cfg->authkey_pcrs);
    if (!certify) return certify.error();
    auto host_digest = hosttpm::pcr_digest(host, cfg->authkey_pcrs);
    if (!host_digest) return host_digest.error();
    auto authkey = hosttpm::read_persistent(host, hosttpm::kAuthKeyHandle);
    if (!authkey) return authkey.error();
    auto authkey_name = tpm::object_name(authkey->publicArea);
    if (!authkey_name) return authkey_name.error();
    attest::IdentityBundle bundle;
    auto ak_pub = tpm::marshal_public(authkey->publicArea);
    auto sel = tpm::marshal_pcr_selection(cfg->authkey_pcrs);
    if (!ak_pub || !sel) return make_error(rc::kFail, "cannot marshal the AuthKey or its PCR selection");
    bundle.authkey_public = *ak_pub;
    bundle.certify_attest = certify->attest;
    bundle.certify_signature = certify->signature;
    bundle.host_pcr_selection = *sel;
    bundle.host_pcr_digest = *host_digest;
    bundle.generation = gen;

    // CertvAIK, signed in the hardware TPM.
    auto vaik_key = tpm::pkey_from_tpm_public(vaik_pub);
    if (!vaik_key) return vaik_key.error();
    attest::VaikCertRequest creq;
    creq.vaik_key = vaik_key->get();
    creq.binding = {*uuid, binding, gen, *vaik_name, *authkey_name};
    creq.days = req.days;
    auto cert = attest::issue_vaik_certificate(creq, **issuer);
    if (!cert) return cert.error();

    // Nothing changed so far but a missing vAIK (deterministic, harmless):
    // a host that cannot sign leaves the record and the vTPM as they were.
    hoststate::IdentityRecord next{*uuid, rec ? rec->generation : 0, rec ? rec->vaik_name : Bytes{}, gen};
    if (auto r = records->save(next); !r) return r.error();

    // Into the vTPM: generation, certificate, bundle; then make it durable.
    Bytes gen_bytes;
    put_be64(gen_bytes, gen);
    out.bundle = attest::encode_bundle(bundle);
    for (auto [index, data] : {std::pair{tpm::kNvGeneration, ByteView(gen_bytes)}, {tpm::kNvVaikCert, ByteView(*cert)},
                               {tpm::kNvIdentityBundle, ByteView(out.bundle)}})
        if (auto r = write_nv(vtpm, index, data); !r) return r.error();
    if (auto r = vtpm.commit(); !r) return r.error();
    if (auto r = records->save({*uuid, gen, *vaik_name, std::nullopt}); !r) return r.error();

    out.vaik_cert_der = std::move(*cert);
    auto vp = tpm::marshal_public(vaik_pub);
    if (!vp) return vp.error();
    out.vaik_public = *vp;
    out.generation = gen;
    return out;
}

}  // namespace vtpm::issuance
