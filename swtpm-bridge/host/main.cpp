// vtpm-host: the operator's side of the hardware-rooted identity.
//   vtpm-host provision --tcti T --dir HOSTDIR --owner-key PEM [--pcrs 0,1,...]
//   vtpm-host authorize --dir HOSTDIR --owner-key PEM [--tcti T | --pcr-digest HEX] [--replace]
//   vtpm-host status    --tcti T --dir HOSTDIR
//   vtpm-host enroll    --tcti T --dir HOSTDIR --ca CADIR --ek-roots PEMFILE
// provision creates or adopts the host AK and the AuthKey in the hardware
// TPM, the AuthKey usable only in host states the owner key approves, and
// writes their public parts, the owner key and the AuthKey's sealed auth
// value into HOSTDIR (with a private owner key, also the approval of the
// host state now). authorize adds the owner's approval of a host state (the
// current PCRs, or a digest computed for an OS not yet booted). This is the operator's tool of the host
// daemon (vtpm-hostd): it runs as the daemon's user, while the daemon is
// stopped; every other program asks the daemon.
#include <getopt.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <optional>
#include <tuple>
#include <string>

#include "tpm/objects.hpp"
#include "hosttpm/host_keys.hpp"
#include "x509/cert_check.hpp"
#include "x509/local_ca.hpp"
#include "tpm/public_key.hpp"
#include "issuance/enroll.hpp"
#include "issuance/host_identity.hpp"
#include "util/durable_file.hpp"
#include "host/export_key.hpp"
#include "host/restore.hpp"
#include "host/revert.hpp"
#include "host/authorize.hpp"
#include "tpm/public_key.hpp"
#include "hoststate/host_files.hpp"
#include "issuance/host_root.hpp"
#include "hosttpm/host_ops.hpp"

using namespace vtpm;

namespace {

Result<std::string> public_pem(const TPM2B_PUBLIC& pub) {
    auto key = tpm::pkey_from_tpm_public(pub.publicArea);
    if (!key) return key.error();
    vtpm::BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), key->get()) != 1) return make_error(rc::kFail, "PEM encoding failed");
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(n));
}

std::string pcr_list(const TPML_PCR_SELECTION& sel) {
    return tpm::pcr_list_text(tpm::selected_pcrs(sel, TPM2_ALG_SHA256));
}

Result<void> write_host_dir(const std::string& dir, const hosttpm::HostKeys& k) {
    hoststate::ProvisionedKeys out;
    out.ak_handle = hosttpm::kHostAkHandle;
    out.authkey_handle = hosttpm::kAuthKeyHandle;
    out.pcrs = tpm::selected_pcrs(k.pcrs, TPM2_ALG_SHA256);
    out.policy.assign(k.policy.buffer, k.policy.buffer + k.policy.size);
    out.sealed_auth = k.sealed_auth;
    for (auto [pem_out, pub_out, pub] : {std::tuple{&out.ak_pem, &out.ak_pub, &k.ak},
                                         std::tuple{&out.authkey_pem, &out.authkey_pub, &k.authkey}}) {
        auto pem = public_pem(*pub);
        if (!pem) return pem.error();
        *pem_out = *pem;
        auto raw = tpm::marshal_public(pub->publicArea);
        if (!raw) return raw.error();
        *pub_out = *raw;
    }
    return hoststate::write_provisioned(dir, out);
}

int usage(int rc) {
    std::fprintf(rc ? stderr : stdout,
                 "usage: vtpm-host provision --tcti TCTI --dir HOSTDIR --owner-key PEM [--pcrs 0,1,...]\n"
                 "       vtpm-host authorize --dir HOSTDIR --owner-key PEM [--tcti TCTI | --pcr-digest HEX] "
                 "[--replace]\n"
                 "       vtpm-host status    --tcti TCTI --dir HOSTDIR\n"
                 "       vtpm-host enroll    --tcti TCTI --dir HOSTDIR --ca CADIR --ek-roots PEMFILE\n"
                 "       vtpm-host restore   FILE [--connect URI] [--bridge-config PATH] [--admin-socket PATH]\n"
                 "       vtpm-host export-key --vm UUID [--hostd SOCKET] [--out FILE]\n"
                 "       vtpm-host revert    --vm UUID --generation G [--hostd SOCKET]\n"
                 "TCTI defaults to %s.\n",
                 hosttpm::kDefaultTcti);
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage(2);
    const std::string cmd = argv[1];
    if (cmd == "--help" || cmd == "-h") return usage(0);
    if (cmd == "restore") return host::restore_main(argc, argv);  // host/restore.cpp: no host TPM needed
    if (cmd == "export-key") return host::export_key_main(argc, argv);  // asks vtpm-hostd
    if (cmd == "revert") return host::revert_main(argc, argv);          // asks vtpm-hostd
    if (cmd != "provision" && cmd != "status" && cmd != "enroll" && cmd != "authorize") return usage(2);
    static const struct option longopts[] = {{"tcti", required_argument, nullptr, 't'},
                                             {"dir", required_argument, nullptr, 'd'},
                                             {"pcrs", required_argument, nullptr, 'p'},
                                             {"ca", required_argument, nullptr, 'c'},
                                             {"ek-roots", required_argument, nullptr, 'e'},
                                             {"owner-key", required_argument, nullptr, 'o'},
                                             {"pcr-digest", required_argument, nullptr, 'g'},
                                             {"replace", no_argument, nullptr, 'r'},
                                             {nullptr, 0, nullptr, 0}};
    std::string tcti = hosttpm::kDefaultTcti, dir, ca_dir, ek_roots, owner_file, pcr_digest_hex;
    bool tcti_given = false, replace = false;
    hosttpm::ProvisionOptions po;
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, nullptr)) != -1) {
        switch (c) {
            case 't': tcti = optarg, tcti_given = true; break;
            case 'd': dir = optarg; break;
            case 'o': owner_file = optarg; break;
            case 'g': pcr_digest_hex = optarg; break;
            case 'r': replace = true; break;
            case 'c': ca_dir = optarg; break;
            case 'e': ek_roots = optarg; break;
            case 'p': {
                po.pcrs.clear();
                std::stringstream ss(optarg);
                std::string tok;
                while (std::getline(ss, tok, ',')) {
                    char* end = nullptr;
                    const unsigned long v = std::strtoul(tok.c_str(), &end, 10);
                    if (tok.empty() || *end) return std::fprintf(stderr, "vtpm-host: bad PCR '%s'\n", tok.c_str()), 2;
                    po.pcrs.push_back(static_cast<uint32_t>(v));
                }
                break;
            }
            default: return usage(2);
        }
    }
    if (dir.empty()) return usage(2);
    if (cmd == "authorize") {
        if (owner_file.empty()) return std::fprintf(stderr, "vtpm-host: authorize: --owner-key is required\n"), 2;
        if (!pcr_digest_hex.empty() && tcti_given)
            return std::fprintf(stderr, "vtpm-host: authorize: --pcr-digest and --tcti exclude each other\n"), 2;
        setenv("TSS2_LOG", "all+none", 0);
        return host::authorize_main(dir, owner_file, pcr_digest_hex.empty() ? std::optional<std::string>(tcti)
                                                                            : std::nullopt,
                                    pcr_digest_hex, replace);
    }
    PkeyPtr owner_key;
    if (cmd == "provision") {
        if (owner_file.empty())
            return std::fprintf(stderr, "vtpm-host: provision: --owner-key is required (the host owner's policy "
                                        "key, EC P-256; its private part approves host states)\n"),
                   2;
        auto pem = read_whole_file(owner_file);
        auto key = pem ? tpm::parse_pem_key(*pem, false, owner_file) : Result<PkeyPtr>(pem.error());
        if (!key) return std::fprintf(stderr, "vtpm-host: --owner-key: %s\n", key.error().message.c_str()), 1;
        owner_key = std::move(*key);
        po.owner_key = owner_key.get();
    }
    // provision and enroll rewrite HOSTDIR: never beside the daemon that
    // serves it (its ledger and keys in memory would no longer match).
    UniqueFd dir_lock;
    if (cmd == "provision" || cmd == "enroll") {
        auto l = hoststate::lock_host_dir(dir, "a running vtpm-hostd (stop it first)");
        if (!l) return std::fprintf(stderr, "vtpm-host: %s: %s\n", cmd.c_str(), l.error().message.c_str()), 1;
        dir_lock = std::move(*l);
    }
    // tpm2-tss logs expected failures (probing an empty handle) as errors;
    // our own messages say what matters. TSS2_LOG set by the caller wins.
    setenv("TSS2_LOG", "all+none", 0);
    auto tpm = hosttpm::Esys::open(tcti);
    if (!tpm) return std::fprintf(stderr, "vtpm-host: %s\n", tpm.error().message.c_str()), 1;
    if (cmd == "enroll") {
        if (ca_dir.empty() || ek_roots.empty()) return usage(2);
        // Enrollment certifies the AuthKey, which needs its auth value: run
        // as the daemon's user, before the daemon starts.
        auto root = issuance::HostRoot::open(std::move(*tpm), dir);
        if (!root) return std::fprintf(stderr, "vtpm-host: enroll: %s\n", root.error().message.c_str()), 1;
        auto r = issuance::enroll_host(**root, ca_dir, ek_roots);
        if (!r) return std::fprintf(stderr, "vtpm-host: enroll: %s\n", r.error().message.c_str()), 1;
        std::printf("EK certificate trusted: %s\nhost AK proven in that TPM (credential activation)\n"
                    "host AK certificate: %s\nAuthKey certificate: %s\nwritten to %s (ak-cert.pem, authkey-cert.pem, "
                    "ca-chain.pem)\n",
                    r->ek_subject.c_str(), r->ak_subject.c_str(), r->authkey_subject.c_str(), dir.c_str());
        return 0;
    }
    if (cmd == "provision") {
        auto keys = hosttpm::provision(**tpm, po);
        if (!keys) return std::fprintf(stderr, "vtpm-host: provision: %s\n", keys.error().message.c_str()), 1;
        if (auto r = write_host_dir(dir, *keys); !r)
            return std::fprintf(stderr, "vtpm-host: %s\n", r.error().message.c_str()), 1;
        if (auto r = hoststate::write_owner_key(dir, owner_key.get()); !r)
            return std::fprintf(stderr, "vtpm-host: %s\n", r.error().message.c_str()), 1;
        std::printf("host AK at %s (%s)\nAuthKey at %s (%s), usable in owner-approved states of sha256 PCRs %s\n"
                    "public parts and owner key in %s\n",
                    hex32(hosttpm::kHostAkHandle).c_str(), keys->ak_created ? "created" : "already present",
                    hex32(hosttpm::kAuthKeyHandle).c_str(), keys->authkey_created ? "created" : "already present",
                    pcr_list(keys->pcrs).c_str(), dir.c_str());
        // A private owner key also approves the state the host is in now.
        {
            auto pem = read_whole_file(owner_file);
            if (pem && tpm::parse_pem_key(*pem, true, owner_file)) {
                tpm->reset();  // authorize opens the TPM itself (one client at a time)
                return host::authorize_main(dir, owner_file, tcti, "", false);
            }
            std::printf("no approval written (the owner key given is public): run vtpm-host authorize with the "
                        "private key before starting vtpm-hostd\n");
        }
        return 0;
    }
    // status: what the TPM holds against what HOSTDIR says.
    int bad = 0;
    for (auto [name, handle] : {std::pair{"host AK", hosttpm::kHostAkHandle}, {"AuthKey", hosttpm::kAuthKeyHandle}}) {
        auto pub = hosttpm::read_persistent(**tpm, handle);
        if (!pub) {
            std::printf("%s at %s: missing (%s)\n", name, hex32(handle).c_str(), pub.error().message.c_str());
            bad = 1;
            continue;
        }
        auto pem = public_pem(*pub);
        auto file = read_whole_file(hoststate::host_path(dir, handle == hosttpm::kHostAkHandle ? hoststate::kAkPem : hoststate::kAuthKeyPem));
        const bool same = pem && file && std::string(file->begin(), file->end()) == *pem;
        std::printf("%s at %s: present, %s\n", name, hex32(handle).c_str(),
                    (same ? "matches " + dir : "DOES NOT match " + dir).c_str());
        bad |= !same;
    }
    // The owner's approvals, and whether the host is in one of them now.
    {
        auto cfg = hoststate::read_host_config(dir);
        auto policy = cfg ? issuance::HostRoot::load_policy(**tpm, dir, cfg->authkey_pcrs)
                          : Result<hosttpm::HostPolicy>(cfg.error());
        if (!policy) {
            std::printf("owner approvals: NOT usable: %s\n", policy.error().message.c_str());
            bad = 1;
        } else {
            auto now = hosttpm::pcr_digest(**tpm, policy->pcrs());
            bool approved = false;
            for (const auto& a : policy->approvals()) approved |= now && a.approval.pcr_digest == *now;
            std::printf("owner approvals: %zu, checked by the TPM; host PCRs %s now (digest %s): %s\n",
                        policy->approvals().size(), pcr_list(policy->pcrs()).c_str(),
                        now ? to_hex(*now).c_str() : "unreadable",
                        approved ? "approved, the AuthKey can sign"
                                 : "NOT approved: the AuthKey cannot sign (vtpm-host authorize)");
            bad |= !approved;
        }
    }
    // Certificates from enrollment, and whether they are valid now.
    for (auto name : {hoststate::kAkCertFile, hoststate::kAuthKeyCertFile}) {
        auto cert = x509::read_pem_certificate(dir + "/" + name);
        if (!cert) {
            std::printf("%s: not enrolled (%s)\n", name, cert.error().message.c_str());
            continue;
        }
        const bool valid = X509_cmp_current_time(X509_get0_notBefore(cert->get())) < 0 &&
                           X509_cmp_current_time(X509_get0_notAfter(cert->get())) > 0;
        std::printf("%s: %s, %s\n", name, x509::summarize(cert->get()).c_str(), valid ? "valid now" : "NOT valid now");
        bad |= !valid;
    }
    return bad;
}
