// Control-channel codec: every command, golden bytes from QEMU's sequences,
// every malformed length, framing at every prefix length.
#include <catch2/catch.hpp>

#include "ctrl/codec.hpp"

using namespace vtpm;
using namespace vtpm::ctrl;

namespace {

Bytes hex(std::string_view s) {
    Bytes b;
    for (size_t i = 0; i + 1 < s.size(); i += 2) {
        if (s[i] == ' ') { --i; continue; }
        b.push_back(static_cast<uint8_t>(std::stoi(std::string(s.substr(i, 2)), nullptr, 16)));
    }
    return b;
}

Bytes msg(uint32_t code, Bytes body = {}) {
    Bytes b;
    put_be32(b, code);
    b.insert(b.end(), body.begin(), body.end());
    return b;
}

const Bytes kBlob = {1, 2, 3, 4, 5};

std::vector<Request> all_requests() {
    return {GetCapabilityReq{}, InitReq{1}, ShutdownReq{}, GetTpmEstablishedReq{}, SetLocalityReq{3},
            HashStartReq{}, HashDataReq{ByteView(kBlob)}, HashEndReq{}, CancelTpmCmdReq{}, StoreVolatileReq{},
            ResetTpmEstablishedReq{4}, GetStateBlobReq{1, 2, 7}, SetStateBlobReq{2, 1, ByteView(kBlob)}, StopReq{},
            GetConfigReq{}, SetDataFdReq{}, SetBufferSizeReq{3968}, GetInfoReq{3, 5}, LockStorageReq{300}};
}

}  // namespace

TEST_CASE("codec: every request round-trips; framing waits for what swtpm waits for") {
    for (const auto& r : all_requests()) {
        Bytes m = encode_request(r);
        auto d = decode_request(m);
        const uint32_t code = load_be32(m.data());
        INFO("command " << code);
        REQUIRE(d.ok());
        CHECK(d->index() == r.index());
        CHECK(encode_request(*d) == m);
        auto f = frame_size(m);
        REQUIRE(f);
        // swtpm reads on until: INIT 8, SET_LOCALITY/RESET_TPMESTABLISHED 5,
        // GET_STATEBLOB 16, HASH_DATA/SET_STATEBLOB the whole announced
        // message, every other command its 4-byte code.
        const size_t want = code == 2 ? 8 : (code == 5 || code == 11) ? 5 : code == 12 ? 16
                          : (code == 7 || code == 13) ? m.size() : 4;
        CHECK(*f == want);
        for (size_t n = 0; n < want; ++n) {
            auto p = frame_size(ByteView(m).first(n));
            CHECK((!p || *p > n));
        }
    }
}

TEST_CASE("codec: golden bytes of QEMU's boot sequence") {
    CHECK(encode_request(InitReq{0}) == hex("0000000200000000"));
    CHECK(encode_request(SetLocalityReq{0}) == hex("0000000500000000"));
    CHECK(encode_request(SetBufferSizeReq{0}) == hex("0000001100000000"));
    CHECK(encode_request(GetStateBlobReq{1, 1, 0}) == hex("0000000c000000010000000100000000"));
    CHECK(encode_capability(0xffff) == hex("000000000000ffff"));
    CHECK(encode_capability(0x1ffff) == hex("000000000001ffff"));
    CHECK(encode_buffersize(0, 4096, 2808, 4096) == hex("00000000000010000000 0af800001000"));
    CHECK(encode_result(0x0a) == hex("0000000a"));
    CHECK(encode_tpm_established(0, true) == hex("0000000001000000"));
    CHECK(encode_config(0, 3) == hex("0000000000000003"));
}

TEST_CASE("codec: exact-size commands reject a byte too few or too many, as swtpm") {
    struct Case { uint32_t code; size_t body; };
    for (auto c : {Case{2, 4}, Case{3, 0}, Case{4, 0}, Case{6, 0}, Case{8, 0}, Case{9, 0}, Case{10, 0},
                   Case{14, 0}, Case{15, 0}, Case{19, 4}}) {
        INFO("command " << c.code);
        CHECK(decode_request(msg(c.code, Bytes(c.body, 0))).ok());
        CHECK(decode_request(msg(c.code, Bytes(c.body + 1, 0))).code() == rc::kBadParameter);
        if (c.body > 0) CHECK(decode_request(msg(c.code, Bytes(c.body - 1, 0))).code() == rc::kBadParameter);
    }
    auto e = decode_request(msg(2, Bytes(2, 0)));
    CHECK(e.error().message.find("CMD_INIT") != std::string::npos);
    // CMD_SHUTDOWN with a byte after it is refused, not run (swtpm keeps running).
    CHECK(decode_request(msg(3, {0})).code() == rc::kBadParameter);
}

TEST_CASE("codec: at-least commands ignore what follows their body, as swtpm") {
    struct Case { uint32_t code; size_t body; };
    for (auto c : {Case{1, 0}, Case{5, 1}, Case{11, 1}, Case{12, 12}, Case{16, 0}, Case{17, 4}, Case{18, 16}}) {
        INFO("command " << c.code);
        CHECK(decode_request(msg(c.code, Bytes(c.body, 0))).ok());
        CHECK(decode_request(msg(c.code, Bytes(c.body + 100, 0))).ok());
        if (c.body > 0) CHECK(decode_request(msg(c.code, Bytes(c.body - 1, 0))).code() == rc::kBadParameter);
    }
    for (uint32_t code : {5u, 11u}) {
        CHECK(decode_request(msg(code, {2})).ok());
        CHECK(decode_request(msg(code, {2, 0, 0, 0})).ok());
        CHECK(decode_request(msg(code, {})).code() == rc::kBadParameter);
    }
    auto r = decode_request(msg(5, {3, 9, 9, 9}));
    CHECK(std::get<SetLocalityReq>(*r).locality == 3);
}

TEST_CASE("codec: variable-length commands check their length fields") {
    Bytes hd = msg(7, {0, 0, 0, 3, 'a', 'b', 'c'});
    CHECK(frame_size(ByteView(hd).first(7)) == std::nullopt);
    CHECK(frame_size(ByteView(hd).first(8)) == 11u);
    REQUIRE(decode_request(hd).ok());
    CHECK(std::get<HashDataReq>(*decode_request(hd)).data.size() == 3);
    hd.pop_back();
    CHECK(decode_request(hd).code() == rc::kBadParameter);
    CHECK(decode_request(msg(7, {0, 0})).code() == rc::kBadParameter);

    Bytes sb = encode_request(SetStateBlobReq{0, 1, ByteView(kBlob)});
    sb.push_back(0);
    CHECK(decode_request(sb).code() == rc::kBadParameter);  // one byte more than announced
    sb.resize(sb.size() - 2);
    CHECK(decode_request(sb).code() == rc::kBadParameter);  // one byte fewer
    CHECK(decode_request(msg(13, Bytes(11, 0))).code() == rc::kBadParameter);
    Bytes huge = msg(13, {0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff});
    CHECK(frame_size(huge) == 16u);
    auto h = decode_request(huge);
    CHECK(h.code() == rc::kFail);
    CHECK(h.error().message.find("exceeds") != std::string::npos);
}

TEST_CASE("codec: unknown codes and LOCK_STORAGE switch") {
    CHECK(decode_request(msg(0x99)).code() == rc::kBadOrdinal);
    CHECK(decode_request(msg(0)).code() == rc::kBadOrdinal);
    CHECK(frame_size(msg(0x99)) == 4u);
    CHECK(decode_request(Bytes{0, 0}).code() == rc::kBadParameter);
    CHECK(decode_request(msg(0x13, {0, 0, 1, 0x2c}), false).code() == rc::kBadOrdinal);
    CHECK(std::get<LockStorageReq>(*decode_request(msg(0x13, {0, 0, 1, 0x2c}))).retries == 300);
    CHECK(cmd_name(0x0c) == "CMD_GET_STATEBLOB");
    CHECK(cmd_name(0x77) == "unknown");
}

TEST_CASE("codec: GET_STATEBLOB response, socket form") {
    Bytes blob = {9, 8, 7, 6};
    CHECK(encode_stateblob(0, 2, blob, 0) == hex("00000000000000020000000400000004 09080706"));
    CHECK(encode_stateblob(0, 0, blob, 3) == hex("00000000000000000000000100000001 06"));
    CHECK(encode_stateblob(0, 0, blob, 9) == hex("00000000000000000000000000000000"));
    CHECK(encode_stateblob(0x800, 0, {}, 0) == hex("00000800000000000000000000000000"));
}

TEST_CASE("codec: GET_INFO response chunks and counts the NUL") {
    std::string s = "{\"a\":1}";
    Bytes r = encode_info(s, 0);
    CHECK(load_be32(r.data() + 4) == 8);
    CHECK(load_be32(r.data() + 8) == 8);
    CHECK(r.size() == 12 + 8);
    CHECK(r.back() == 0);
    Bytes r2 = encode_info(s, 5);
    CHECK(load_be32(r2.data() + 8) == 3);
    std::string big(5000, 'x');
    Bytes r3 = encode_info(big, 0);
    CHECK(load_be32(r3.data() + 4) == 5001);
    CHECK(load_be32(r3.data() + 8) == 3072);
    Bytes r4 = encode_info(big, 3072);
    CHECK(load_be32(r4.data() + 8) == 5001 - 3072);
    CHECK(r4.back() == 0);
}

TEST_CASE("codec: CMD_VTPM_TPM_COMMAND only when enabled") {
    const Bytes tpm_cmd = {0x80, 0x01, 0, 0, 0, 0x0c, 0, 0, 0x01, 0x7b, 0, 8};  // GetRandom(8)
    const Bytes msg = encode_request(VendorTpmCommandReq{tpm_cmd});
    REQUIRE(msg.size() == 8 + tpm_cmd.size());
    // Disabled (the default, as swtpm): an unknown 4-byte code.
    CHECK(frame_size(msg) == std::optional<size_t>(4));
    CHECK(decode_request(msg).code() == rc::kBadOrdinal);
    // Enabled: framed by its length, decoded to the TPM command.
    CHECK(frame_size(ByteView(msg).first(7), true) == std::nullopt);
    CHECK(frame_size(msg, true) == std::optional<size_t>(msg.size()));
    auto d = decode_request(msg, true, true);
    REQUIRE(d);
    const auto& r = std::get<VendorTpmCommandReq>(*d);
    CHECK(Bytes(r.command.begin(), r.command.end()) == tpm_cmd);
    CHECK(decode_request(ByteView(msg).first(msg.size() - 1), true, true).code() == rc::kBadParameter);
    Bytes tiny = msg;
    tiny.resize(8 + 4);
    store_be32(tiny.data() + 4, 4);
    CHECK(decode_request(tiny, true, true).error().message.find("not allowed") != std::string::npos);
    Bytes huge = msg;
    store_be32(huge.data() + 4, kMaxVendorTpmCommand + 1);
    CHECK(frame_size(huge, true) == std::optional<size_t>(8));
    CHECK(decode_request(huge, true, true).code() == rc::kBadParameter);
    const Bytes rsp = encode_vendor_tpm_response(0, Bytes{1, 2, 3});
    CHECK(rsp == Bytes{0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3});
    CHECK(encode_vendor_tpm_response(rc::kBadOrdinal, {}) == encode_result(rc::kBadOrdinal));
}

TEST_CASE("codec: CMD_VTPM_RAM_DIGEST only when enabled, 52-byte body checked") {
    VendorRamDigestReq r;
    r.phase = 2;
    r.hash_alg = 0x000B;
    r.page_size = 4096;
    r.page_count = 65536;
    r.root[0] = 0xab;
    r.root[31] = 0xcd;
    const Bytes msg = encode_request(r);
    REQUIRE(msg.size() == 56);
    CHECK(load_be32(msg.data()) == 0x76540002);
    CHECK(frame_size(msg, true) == 56u);
    CHECK(frame_size(msg, false) == 4u);  // unknown to swtpm: a bare 4-byte code
    CHECK(decode_request(msg, true, false).code() == rc::kBadOrdinal);
    auto d = decode_request(msg, true, true);
    REQUIRE(d);
    const auto& back = std::get<VendorRamDigestReq>(*d);
    CHECK(back.phase == 2);
    CHECK(back.page_count == 65536);
    CHECK(back.root == r.root);
    CHECK(encode_request(*d) == msg);
    CHECK(decode_request(ByteView(msg).first(55), true, true).code() == rc::kBadParameter);
    Bytes bad = msg;
    bad[7] = 3;  // phase 3: the incoming stream is complete
    REQUIRE(decode_request(bad, true, true));
    CHECK(std::get<VendorRamDigestReq>(*decode_request(bad, true, true)).phase == 3);
    bad[7] = 4;
    CHECK(decode_request(bad, true, true).error().message.find("phase 4") != std::string::npos);
    bad[7] = 0;
    CHECK(decode_request(bad, true, true).code() == rc::kBadParameter);
    bad = msg;
    bad[11] = 0x0c;  // SHA-384
    CHECK(decode_request(bad, true, true).error().message.find("only SHA-256") != std::string::npos);
    CHECK((cap::kVtpmRamDigest & 0xffff) == 0);  // not one of swtpm's bits
}

TEST_CASE("codec: CMD_VTPM_SNAPSHOT is a bare code, only when enabled") {
    const Bytes msg = encode_request(VendorSnapshotReq{});
    REQUIRE(msg == Bytes{0x76, 0x54, 0x00, 0x03});
    CHECK(frame_size(msg, true) == 4u);
    CHECK(decode_request(msg, true, false).code() == rc::kBadOrdinal);
    auto d = decode_request(msg, true, true);
    REQUIRE(d);
    CHECK(std::holds_alternative<VendorSnapshotReq>(*d));
    Bytes longer = msg;
    longer.push_back(0);
    CHECK(decode_request(longer, true, true).error().message.find("must be empty") != std::string::npos);
    CHECK((cap::kVtpmSnapshot & 0xffff) == 0);
}

TEST_CASE("codec: CMD_VTPM_VERIFY_RAM is a bare code, only when enabled; its answer carries text") {
    const Bytes msg = encode_request(VendorVerifyRamReq{});
    REQUIRE(msg == Bytes{0x76, 0x54, 0x00, 0x04});
    CHECK(frame_size(msg, true) == 4u);
    CHECK(frame_size(msg, false) == 4u);
    CHECK(decode_request(msg, true, false).code() == rc::kBadOrdinal);
    auto d = decode_request(msg, true, true);
    REQUIRE(d);
    CHECK(std::holds_alternative<VendorVerifyRamReq>(*d));
    Bytes longer = msg;
    longer.push_back(0);
    CHECK(decode_request(longer, true, true).error().message.find("must be empty") != std::string::npos);
    CHECK((cap::kVtpmVerifyRam & 0xffff) == 0);
    CHECK((cap::kVtpmVerifyRam & (cap::kVtpmSnapshot | cap::kVtpmRamDigest | cap::kVtpmTpmCommand)) == 0);

    const Bytes ok = encode_vendor_text_response(0, "");
    CHECK(ok == Bytes{0, 0, 0, 0, 0, 0, 0, 0});
    const Bytes no = encode_vendor_text_response(rc::kFail, "first differing pages: 7");
    auto head = vendor_text_head(no);
    REQUIRE(head);
    CHECK(head->result == rc::kFail);
    REQUIRE(head->length == 24);
    CHECK(std::string(no.begin() + 8, no.end()) == "first differing pages: 7");
    CHECK(!vendor_text_head(ByteView(no).first(7)));
    const Bytes big = encode_vendor_text_response(rc::kFail, std::string(kMaxVendorText + 10, 'x'));
    CHECK(big.size() == 8 + kMaxVendorText);  // cut, never more than a client accepts
    Bytes over = big;
    over[4] = 0xff;
    CHECK(vendor_text_head(over).code() == rc::kFail);
}
