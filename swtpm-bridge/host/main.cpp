// vtpm-host: the operator's side of the hardware-rooted identity.
//   vtpm-host provision --tcti T --dir HOSTDIR [--pcrs 0,1,...]
//   vtpm-host status    --tcti T --dir HOSTDIR
//   vtpm-host enroll    --tcti T --dir HOSTDIR --ca CADIR --ek-roots PEMFILE
// provision creates or adopts the host AK and the PCR-bound AuthKey in the
// hardware TPM and writes their public parts, the policy and the AuthKey's
// sealed auth value into HOSTDIR. This is the operator's tool of the host
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
                 "usage: vtpm-host provision --tcti TCTI --dir HOSTDIR [--pcrs 0,1,...]\n"
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
    if (cmd != "provision" && cmd != "status" && cmd != "enroll") return usage(2);
    static const struct option longopts[] = {{"tcti", required_argument, nullptr, 't'},
                                             {"dir", required_argument, nullptr, 'd'},
                                             {"pcrs", required_argument, nullptr, 'p'},
                                             {"ca", required_argument, nullptr, 'c'},
                                             {"ek-roots", required_argument, nullptr, 'e'},
                                             {nullptr, 0, nullptr, 0}};
    std::string tcti = hosttpm::kDefaultTcti, dir, ca_dir, ek_roots;
    hosttpm::ProvisionOptions po;
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, nullptr)) != -1) {
        switch (c) {
            case 't': tcti = optarg; break;
            case 'd': dir = optarg; break;
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
        std::printf("host AK at %s (%s)\nAuthKey at %s (%s), bound to sha256 PCRs %s\npublic parts in %s\n",
                    hex32(hosttpm::kHostAkHandle).c_str(), keys->ak_created ? "created" : "already present",
                    hex32(hosttpm::kAuthKeyHandle).c_str(), keys->authkey_created ? "created" : "already present",
                    pcr_list(keys->pcrs).c_str(), dir.c_str());
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
    auto authkey = hosttpm::read_persistent(**tpm, hosttpm::kAuthKeyHandle);
    if (authkey) {
        auto sel = hosttpm::pcr_selection(po);
        auto now = sel ? hosttpm::current_pcr_policy(**tpm, *sel) : Result<TPM2B_DIGEST>(sel.error());
        const auto& pol = authkey->publicArea.authPolicy;
        const bool usable = now && now->size == pol.size && std::memcmp(now->buffer, pol.buffer, pol.size) == 0;
        std::printf("AuthKey policy: %s\n", usable ? "satisfied by the current host PCRs"
                                                   : "NOT satisfied: the host PCRs changed (the AuthKey cannot sign)");
        bad |= !usable;
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
