#include <catch2/catch.hpp>

#include "util/subopts.hpp"

using vtpm::SubOpts;

TEST_CASE("subopts: name=value and bare flags") {
    auto r = SubOpts::parse("type=unixio,path=/tmp/x,,terminate", {"type", "path", "terminate"});
    REQUIRE(r.ok());
    CHECK(r->str("type") == "unixio");
    CHECK(r->str("path") == "/tmp/x");
    CHECK(r->flag("terminate"));
    CHECK_FALSE(r->has("mode"));
}

TEST_CASE("subopts: first occurrence wins") {
    auto r = SubOpts::parse("port=1,port=2", {"port"});
    REQUIRE(r.ok());
    CHECK(r->integer("port").value() == 1);
}

TEST_CASE("subopts: unknown names and empty values are errors naming the token") {
    auto r = SubOpts::parse("type=tcp,bogus=1", {"type"});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("bogus=1") != std::string::npos);
    auto e = SubOpts::parse("path=", {"path"});
    REQUIRE_FALSE(e.ok());
}

TEST_CASE("subopts: typed accessors reject junk") {
    auto r = SubOpts::parse("mode=0640,bad=0999,port=12x,level=5", {"mode", "bad", "port", "level"});
    REQUIRE(r.ok());
    CHECK(r->mode("mode").value() == 0640);
    CHECK_FALSE(r->mode("bad").ok());
    CHECK_FALSE(r->integer("port").ok());
    CHECK(r->integer("level").value() == 5);
    // As swtpm's strtol: a '+' and leading white space are taken, nothing after the digits.
    auto plus =
        SubOpts::parse("port=+2321,level= 7,mode=+0600,bad=+-1,junk=+", {"port", "level", "mode", "bad", "junk"});
    REQUIRE(plus.ok());
    CHECK(plus->integer("port").value() == 2321);
    CHECK(plus->integer("level").value() == 7);
    CHECK(plus->mode("mode").value() == 0600);
    CHECK_FALSE(plus->integer("bad").ok());
    CHECK_FALSE(plus->integer("junk").ok());
    CHECK(r->uid("absent").value() == std::nullopt);
    auto u = SubOpts::parse("uid=0,gid=root", {"uid", "gid"});
    REQUIRE(u.ok());
    CHECK(u->uid("uid").value() == 0u);
    CHECK(u->gid("gid").value() == 0u);
}

TEST_CASE("subopts: boolean spelling follows swtpm") {
    auto r = SubOpts::parse("a=TRUE,b=1,c=yes,d", {"a", "b", "c", "d"});
    REQUIRE(r.ok());
    CHECK(r->flag("a"));
    CHECK(r->flag("b"));
    CHECK_FALSE(r->flag("c"));
    CHECK(r->flag("d"));
}

#include "util/key_value.hpp"

TEST_CASE("key = value text: comments, blanks, trimming, line numbers") {
    auto kv = vtpm::parse_key_values("# comment\n\n  a = 1 \nb=two words\r\nc =\n", "f.conf");
    REQUIRE(kv);
    REQUIRE(kv->size() == 3);
    CHECK((*kv)[0].line == 3);
    CHECK((*kv)[0].key == "a");
    CHECK((*kv)[0].value == "1");
    CHECK((*kv)[1].value == "two words");
    CHECK((*kv)[2].value.empty());
    auto bad = vtpm::parse_key_values("a = 1\njunk\n", "f.conf");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message == "f.conf:2: expected 'key = value'");
    // Found by fuzzing: a line with no key before '=' is refused, not read as key "".
    auto nokey = vtpm::parse_key_values("a = 1\n  = 2\n", "f.conf");
    REQUIRE_FALSE(nokey);
    CHECK(nokey.error().message == "f.conf:2: no key before '='");
    CHECK(vtpm::trim(" \t x y \r") == "x y");
    CHECK(vtpm::trim("   ").empty());
}
