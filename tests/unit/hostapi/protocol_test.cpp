// vtpm-hostd's local API codec: golden bytes of a request, round trips of
// every statement, and every malformed length, count and size refused with a
// message naming it.
#include <catch2/catch.hpp>

#include "hostapi/protocol.hpp"

using namespace vtpm;
using namespace vtpm::hostapi;

namespace {

Bytes body_of(const Bytes& framed) { return Bytes(framed.begin() + 4, framed.end()); }

std::string error_of(const Result<Message>& r) { return r ? std::string() : r.error().message; }

}  // namespace

TEST_CASE("a request frame is length, version, kind, field count and length-prefixed fields") {
    const Bytes framed = encode_request(Kind::LedgerLatest, {Bytes{0xaa, 0xbb}});
    const Bytes want = {0, 0, 0, 12, 0, 1, 0, 2, 0, 1, 0, 0, 0, 2, 0xaa, 0xbb};
    CHECK(framed == want);
    auto n = frame_length(ByteView(framed).first(4));
    REQUIRE(n);
    CHECK(*n == 12);
    auto m = decode_request(body_of(framed));
    REQUIRE(m);
    CHECK(m->kind == 2);
    CHECK(m->fields == std::vector<Bytes>{{0xaa, 0xbb}});
}

TEST_CASE("a failure response carries its status and reason") {
    auto m = decode_response(body_of(encode_failure(3, 0, "no")));
    REQUIRE(m);
    CHECK(m->kind == 3);
    CHECK(m->status != 0);  // a failure is never status 0
    CHECK(m->fields == std::vector<Bytes>{{'n', 'o'}});
}

TEST_CASE("malformed bodies are refused, naming what is wrong") {
    CHECK(error_of(decode_request(Bytes{0, 1, 0})).find("shorter than its header") != std::string::npos);
    CHECK(error_of(decode_request(Bytes{0, 2, 0, 1, 0, 0})).find("version 2") != std::string::npos);
    CHECK(error_of(decode_request(Bytes{0, 1, 0, 1, 0, 1, 0, 0})).find("length cut off") != std::string::npos);
    CHECK(error_of(decode_request(Bytes{0, 1, 0, 1, 0, 1, 0, 0, 0, 9, 1})).find("only 1 follow") !=
          std::string::npos);
    CHECK(error_of(decode_request(Bytes{0, 1, 0, 1, 0, 0, 7})).find("after the last") != std::string::npos);
    CHECK(error_of(decode_request(Bytes{0, 1, 0, 1, 0xff, 0xff})).find("fields") != std::string::npos);
    const Bytes huge = {0xff, 0xff, 0xff, 0xff};
    CHECK_FALSE(frame_length(huge));
}

TEST_CASE("every statement survives its round trip") {
    Uuid vm{};
    vm[0] = 7;
    VaikRequest v;
    v.challenge[3] = 1;
    v.activated = Bytes(32, 9);
    v.vm = vm;
    v.user_cert = {1, 2};
    v.nonce = Bytes(20, 3);
    v.vaik_public = {4};
    v.vtpm_generation = 9;
    v.vaik_existed = true;
    v.days = 30;
    auto v2 = parse_vaik_request(to_fields(v));
    REQUIRE(v2);
    CHECK(to_fields(*v2) == to_fields(v));
    TcgCertRequest t;
    t.kind = 1;
    t.subject_public_key = {0x30};
    t.days = -1;
    t.subject_cn = "vm";
    auto t2 = parse_tcg_cert_request(to_fields(t));
    REQUIRE(t2);
    CHECK(t2->days == -1);
    CHECK(t2->subject_cn == "vm");
    CHECK(t2->kind == 1);
    LedgerReply l{true, 5, {}, true};
    auto l2 = parse_ledger_reply(to_fields(l));
    REQUIRE(l2);
    CHECK(l2->generation == 5);
    CHECK(l2->present);
    CHECK(l2->restored);
    GenerationRequest g{vm, 9, {}};
    auto g2 = parse_generation_request(to_fields(g));
    REQUIRE(g2);
    CHECK(g2->generation == 9);
    VaikChallengeReply ch{{}, {1}, {2, 3}};
    auto ch2 = parse_vaik_challenge_reply(to_fields(ch));
    REQUIRE(ch2);
    CHECK(to_fields(*ch2) == to_fields(ch));
    VaikConfirm c{vm, 4, {1}};
    auto c2 = parse_vaik_confirm(to_fields(c));
    REQUIRE(c2);
    CHECK(c2->generation == 4);
    auto k2 = parse_state_key_request(to_fields(StateKeyRequest{vm, true}));
    REQUIRE(k2);
    CHECK(k2->vm == vm);
    CHECK(k2->create);
    auto kr = parse_state_key_reply(to_fields(StateKeyReply{true, Bytes(32, 5)}));
    REQUIRE(kr);
    CHECK(kr->created);
    CHECK(kr->key == Bytes(32, 5));
}

TEST_CASE("typed parsers refuse wrong counts, sizes and flags") {
    CHECK_FALSE(parse_ledger_query({}));
    CHECK(parse_ledger_query({Bytes(15)}).error().message.find("VM UUID is 15 bytes") != std::string::npos);
    LeavesRequest lr{};
    lr.leaves = Bytes(33);
    CHECK(parse_leaves_request(to_fields(lr)).error().message.find("multiple of 32") != std::string::npos);
    auto f = to_fields(VaikRequest{});
    f[7] = {2};  // vaik_existed must be 0 or 1
    CHECK(parse_vaik_request(f).error().message.find("neither 0 nor 1") != std::string::npos);
    auto t = to_fields(TcgCertRequest{});
    t[0] = {2};
    CHECK(parse_tcg_cert_request(t).error().message.find("kind 2 unknown") != std::string::npos);
    CHECK(parse_state_key_request({Bytes(16)}).error().message.find("1 fields, expected 2") != std::string::npos);
    CHECK(parse_state_key_request({Bytes(16), {2}}).error().message.find("neither 0 nor 1") != std::string::npos);
    CHECK(parse_state_key_reply({{0}, Bytes(31)}).error().message.find("not 32 bytes") != std::string::npos);
}
