#include "issuance/issue.hpp"

#include "attest/vaik_cert.hpp"
#include "hoststate/identity_records.hpp"
#include "issuance/host_identity.hpp"
#include "issuance/vtpm_identity.hpp"
#include "tpm/objects.hpp"
#include "tpm/public_key.hpp"

namespace vtpm::issuance {

Result<hostapi::VaikReply> sign_vaik_identity(HostRoot& root, const hostapi::VaikRequest& req) {
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
    auto issuer = AuthKeyIssuer::open(root);
    if (!issuer) return issuer.error();

    // Uniqueness: what this host issued before against what the vTPM holds.
    auto records = hoststate::IdentityRecords::open_locked(root.dir());
    if (!records) return records.error();
    std::optional<hoststate::IdentityRecord> rec;
    if (auto r = records->load(uuid)) rec = *r;
    else if (r.code() != rc::kRetry) return r.error();
    std::optional<Bytes> existing_name;
    if (req.vaik_existed) existing_name = *vaik_name;
    if (auto clash = hoststate::generation_clash(rec, req.vtpm_generation, existing_name); clash && !req.adopt)
        return make_error(rc::kFail, "identity clash for VM " + uuid + ": " + *clash +
                                         "; refusing to issue a second identity (--adopt overrides after checking)");
    const uint64_t gen = std::max(req.vtpm_generation, rec ? rec->generation : 0) + 1;

    // Fresh CertAuthKey for this user and nonce, and the host PCR inputs.
    const Bytes binding = tpm::user_binding(req.user_cert, req.nonce);
    auto certify = root.certify_authkey(binding);
    if (!certify) return certify.error();
    auto host_digest = hosttpm::pcr_digest(root.tpm(), root.config().authkey_pcrs);
    if (!host_digest) return host_digest.error();
    attest::IdentityBundle bundle;
    auto ak_pub = tpm::marshal_public(root.authkey_public());
    auto sel = tpm::marshal_pcr_selection(root.config().authkey_pcrs);
    if (!ak_pub || !sel) return make_error(rc::kFail, "cannot marshal the AuthKey or its PCR selection");
    bundle.authkey_public = *ak_pub;
    bundle.certify_attest = certify->attest;
    bundle.certify_signature = certify->signature;
    bundle.host_pcr_selection = *sel;
    bundle.host_pcr_digest = *host_digest;
    bundle.generation = gen;

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
    if (auto r = records->save(next); !r) return r.error();
    return hostapi::VaikReply{std::move(*cert), attest::encode_bundle(bundle), gen};
}

Result<void> confirm_vaik_identity(HostRoot& root, const hostapi::VaikConfirm& c) {
    const std::string uuid = format_uuid(c.vm);
    auto records = hoststate::IdentityRecords::open_locked(root.dir());
    if (!records) return records.error();
    auto rec = records->load(uuid);
    if (!rec) return make_error(rc::kFail, "no identity was issued for VM " + uuid);
    if (!rec->pending || *rec->pending != c.generation)
        return make_error(rc::kFail, "VM " + uuid + ": generation " + std::to_string(c.generation) +
                                         " is not the one pending");
    return records->save({uuid, c.generation, c.vaik_name, std::nullopt});
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
    hostapi::VaikRequest hreq;
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
