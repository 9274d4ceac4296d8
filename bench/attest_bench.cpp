// vtpm-attest-bench: what the hardware-rooted identity costs, next to the
// raw hardware-TPM operations it is made of (bench/attest.sh prepares a
// stand-in TPM, a provisioned and enrolled host, a VM state and evidence).
//   raw host-TPM costs: PCR read, Certify and Sign with their policy sessions
//     (in-process, as the daemon does them)
//   vtpm-hostd requests: a snapshot record and a CertvAIK issuance (offline
//     issue on a state directory: the daemon's Certify + Sign, vAIK/NV in the
//     vTPM, durable writes), each through the daemon's socket
//   verification throughput: verify_evidence on one core, verifications/s
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tpm/objects.hpp"
#include "attest/verify.hpp"
#include "hosttpm/host_ops.hpp"
#include "x509/local_ca.hpp"
#include "x509/tcg_cert.hpp"
#include "hostapi/client.hpp"
#include "issuance/host_root.hpp"
#include "issuance/issue.hpp"
#include "snapshot/record.hpp"
#include "stats.hpp"
#include "util/durable_file.hpp"

using namespace vtpm;
using Clock = std::chrono::steady_clock;

namespace {

double us_since(Clock::time_point t) {
    return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

template <typename F>
bench::Summary time_it(int n, F&& f) {
    std::vector<double> s;
    for (int i = 0; i < n; ++i) {
        auto t = Clock::now();
        if (!f()) {
            std::fprintf(stderr, "vtpm-attest-bench: operation failed\n");
            std::exit(1);
        }
        s.push_back(us_since(t));
    }
    return bench::summarize(s);
}

void row(const char* what, const bench::Summary& s) {
    std::printf("  %-44s %10.0f %10.0f\n", what, s.median, s.p99);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 11) {
        std::fprintf(stderr,
                     "usage: vtpm-attest-bench TCTI HOSTDIR STATEDIR USERCERT AKCERT CA EVIDENCE NONCE ROUNDS VTPM-HOSTD\n");
        return 2;
    }
    const std::string tcti = argv[1], host_dir = argv[2], state = argv[3];
    const int rounds = std::atoi(argv[9]);
    setenv("TSS2_LOG", "all+none", 0);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof one, &one);

    auto opened = hosttpm::Esys::open(tcti);
    if (!opened) return std::fprintf(stderr, "%s\n", opened.error().message.c_str()), 1;
    auto root = issuance::HostRoot::open(std::move(*opened), host_dir);
    if (!root) return std::fprintf(stderr, "%s\n", root.error().message.c_str()), 1;
    hosttpm::Esys* tpm = &(*root)->tpm();
    const auto& cfg = (*root)->config();
    auto user = x509::read_pem_certificate(argv[4]);
    auto user_der = user ? x509::to_der(user->get()) : Result<Bytes>(user.error());
    if (!user_der) return std::fprintf(stderr, "%s\n", user_der.error().message.c_str()), 1;
    const Bytes binding(32, 0x42);
    const Bytes digest(32, 0x17);

    std::printf("%-46s %10s %10s\n", "identity (stand-in TPM: Debian swtpm)", "median µs", "p99 µs");
    row("host TPM: GetRandom round trip", time_it(rounds, [&] {
            TPM2B_DIGEST* r = nullptr;
            TSS2_RC rc = Esys_GetRandom(tpm->ctx(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, 16, &r);
            Esys_Free(r);
            return rc == TSS2_RC_SUCCESS;
        }));
    row("host TPM: PCR digest (PCR_Read 0-9)",
        time_it(rounds, [&] { return hosttpm::pcr_digest(*tpm, cfg.authkey_pcrs).ok(); }));
    row("host TPM: Certify AuthKey by AK (+policy)",
        time_it(rounds, [&] { return (*root)->certify_authkey(binding).ok(); }));
    row("host TPM: Sign by AuthKey (+policy)", time_it(rounds, [&] { return (*root)->sign_digest(digest).ok(); }));
    const Bytes authkey_name = (*root)->authkey_name();
    root->reset();  // the daemon is the TPM's one client from here on

    // The daemon, as a host runs it.
    const std::string sock = state + ".hostd.sock";
    const std::string ek_ca = host_dir.substr(0, host_dir.rfind('/')) + "/localca";  // attest.sh's vtpm-setup CA
    const pid_t hostd = fork();
    if (hostd == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);  // a failed run leaves no daemon behind
        execl(argv[10], argv[10], "--dir", host_dir.c_str(), "--tcti", tcti.c_str(), "--socket", sock.c_str(),
              "--ek-ca", ek_ca.c_str(), "--log", "level=0", static_cast<char*>(nullptr));
        _exit(127);
    }
    struct stat st {};
    for (int i = 0; i < 200 && stat(sock.c_str(), &st) != 0; ++i) usleep(20000);
    const hostapi::Client client(sock);
    snapshot::SnapshotRecord rec;
    rec.vm_uuid = {0x11, 0x22, 0x33, 0x44};
    rec.page_count = 1;
    rec.banks.push_back({TPM2_ALG_SHA256, std::vector<Bytes>(24, Bytes(32, 0))});
    rec.host_key_name = authkey_name;
    row("hostd: snapshot record (SignSnapshotRecord)", time_it(rounds, [&] {
            rec.generation += 1;
            auto r = client.sign_record({snapshot::encode_record(rec)});
            if (!r) std::fprintf(stderr, "%s\n", r.error().message.c_str());
            return r.ok();
        }));

    issuance::IssueRequest req;
    req.vm_uuid = "6c1f8e22-4b6f-4d0e-9a51-0d6c3f1b2a77";
    req.user_cert_der = *user_der;
    req.nonce = Bytes(20, 0x33);
    row("hostd: CertvAIK issuance, offline (end to end)", time_it(rounds, [&] {
            auto ch = issuance::open_offline(state, std::nullopt);
            if (!ch) return std::fprintf(stderr, "%s\n", ch.error().message.c_str()), false;
            auto r = issuance::issue_identity(client, **ch, req);
            if (!r) std::fprintf(stderr, "%s\n", r.error().message.c_str());
            return r.ok();
        }));
    kill(hostd, SIGTERM);
    waitpid(hostd, nullptr, 0);

    // Verification: in-process, one core.
    auto ak = x509::read_pem_certificate(argv[5]);
    auto ca = x509::read_pem_certificates(argv[6]);
    auto ev = read_whole_file(argv[7]);
    auto nonce = from_hex(argv[8]);
    if (!ak || !ca || !ev || !nonce) return std::fprintf(stderr, "cannot read the verification inputs\n"), 1;
    attest::VerifyInputs in;
    in.host_ak_cert = ak->get();
    for (int i = 0; i < sk_X509_num(ca->get()); ++i) in.ca.push_back(sk_X509_value(ca->get(), i));
    in.user_cert_der = *user_der;
    in.nonce = *nonce;
    in.vm_uuid = req.vm_uuid;
    if (!attest::verify_evidence(in, *ev).ok) return std::fprintf(stderr, "the evidence does not verify\n"), 1;
    auto v = time_it(rounds * 10, [&] { return attest::verify_evidence(in, *ev).ok; });
    row("verify evidence (one core)", v);
    const auto t0 = Clock::now();
    int n = 0;
    while (us_since(t0) < 2e6) n += attest::verify_evidence(in, *ev).ok ? 1 : 0;
    std::printf("  %-44s %10.0f /s\n", "verification throughput, one core", n / (us_since(t0) / 1e6));
    return 0;
}
