// Fuzz what vtpm-hostd reads from any local client (a bridge its guest may
// have taken over): the frame prefix, the request body, every statement's
// typed parser, and the snapshot record a SignSnapshotRecord carries. Also
// the response decoder its clients run. Whatever parses must survive its
// own round trip; nothing may crash.
#include <cstdlib>

#include "hostapi/protocol.hpp"
#include "snapshot/record.hpp"

using namespace vtpm;
using namespace vtpm::hostapi;

namespace {

template <typename T, typename P>
void round_trip(const std::vector<Bytes>& f, P parse) {
    auto a = parse(f);
    if (!a) return;
    auto b = parse(to_fields(*a));
    if (!b || to_fields(*a) != to_fields(*b)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const ByteView in(data, size);
    if (size >= 4) (void)frame_length(in.first(4));
    if (auto m = decode_response(in)) {
        if (m->status == 0) (void)parse_vaik_reply(m->fields);
    }
    auto m = decode_request(in);
    if (!m) return 0;
    // Re-encoding what was decoded gives the same body back.
    const Bytes framed = encode_request(static_cast<Kind>(m->kind), m->fields);
    if (framed.size() != size + 4 || !std::equal(framed.begin() + 4, framed.end(), data)) std::abort();
    const auto& f = m->fields;
    switch (static_cast<Kind>(m->kind)) {
        case Kind::HostInfo: round_trip<HostInfoReply>(f, parse_host_info); break;
        case Kind::LedgerLatest:
            round_trip<LedgerQuery>(f, parse_ledger_query);
            round_trip<LedgerReply>(f, parse_ledger_reply);
            break;
        case Kind::SignSnapshotRecord:
            if (auto r = parse_record_request(f)) (void)snapshot::parse_record(r->record);
            break;
        case Kind::KeepLeaves:
        case Kind::LeavesFor: round_trip<LeavesRequest>(f, parse_leaves_request); break;
        case Kind::IssueTcgCert: round_trip<TcgCertRequest>(f, parse_tcg_cert_request); break;
        case Kind::IssueVaik: round_trip<VaikRequest>(f, parse_vaik_request); break;
        case Kind::ConfirmVaik: round_trip<VaikConfirm>(f, parse_vaik_confirm); break;
        case Kind::VaikChallenge:
            round_trip<VaikChallengeRequest>(f, parse_vaik_challenge_request);
            round_trip<VaikChallengeReply>(f, parse_vaik_challenge_reply);
            break;
        case Kind::ConsumeGeneration:
        case Kind::RevertGeneration: round_trip<GenerationRequest>(f, parse_generation_request); break;
        case Kind::StateKey:
        case Kind::ExportStateKey:
            round_trip<StateKeyRequest>(f, parse_state_key_request);
            round_trip<StateKeyReply>(f, parse_state_key_reply);
            break;
    }
    return 0;
}
