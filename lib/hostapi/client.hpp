// A client of vtpm-hostd's local API (protocol.hpp) over its unix socket:
// what bridges, vtpm-setup and vtpm-attest use instead of the hardware TPM.
// One connection per request, so a restarted daemon is simply reconnected.
#pragma once

#include <string>
#include <vector>

#include "hostapi/protocol.hpp"
#include "util/secure_memory.hpp"
#include "vtpm/result.hpp"

namespace vtpm::hostapi {

class Client {
public:
    explicit Client(std::string socket_path) : path_(std::move(socket_path)) {}
    const std::string& path() const { return path_; }

    /// One request and its answer. A daemon that refuses gives its reason
    /// as the error; one that cannot be reached is named with the socket.
    Result<std::vector<Bytes>> call(Kind kind, const std::vector<Bytes>& fields) const;

    Result<HostInfoReply> host_info() const;
    Result<LedgerReply> ledger_latest(const Uuid& vm) const;
    Result<RecordReply> sign_record(const RecordRequest& r) const;
    Result<void> keep_leaves(const LeavesRequest& r) const;
    /// The kept page hashes (empty when the daemon has none for that root).
    Result<Bytes> leaves_for(const Uuid& vm, const Digest32& root) const;
    Result<Bytes> issue_tcg_cert(const TcgCertRequest& r) const;
    Result<VaikChallengeReply> vaik_challenge(const VaikChallengeRequest& r) const;
    Result<VaikReply> issue_vaik(const VaikRequest& r) const;
    Result<void> confirm_vaik(const VaikConfirm& r) const;
    /// VM `vm`'s state-at-rest key (made on this call when `create` and the
    /// VM has none), in wiped, locked memory.
    Result<ProtectedBytes> state_key(const Uuid& vm, bool create, bool* created = nullptr) const;
    /// ExportStateKey: VM `vm`'s existing key, for an operator (the daemon
    /// serves it to root only).
    Result<ProtectedBytes> export_state_key(const Uuid& vm) const;
    Result<void> consume_generation(const GenerationRequest& r) const;
    Result<void> revert_generation(const GenerationRequest& r) const;

private:
    std::string path_;
};

}  // namespace vtpm::hostapi
