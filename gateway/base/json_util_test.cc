// ValidUtf8 and the JSON helpers that must never throw on untrusted text.
#include "gateway/base/json_util.h"

#include "gtest/gtest.h"

namespace gateway {
namespace {

TEST(ValidUtf8Test, ValidTextIsUnchanged) {
  for (const char* text : {"", "systemd", "шлюз", "日本語", "\xf0\x9f\x98\x80", "a\\xffb"}) {
    EXPECT_TRUE(IsValidUtf8(text)) << text;
    EXPECT_EQ(ValidUtf8(text), text);
  }
}

TEST(ValidUtf8Test, EachInvalidByteBecomesAHexEscape) {
  EXPECT_EQ(ValidUtf8("\xff\xfe" "-x"), "\\xff\\xfe-x");
  EXPECT_EQ(ValidUtf8("шлюзшлю\xd0"), "шлюзшлю\\xd0");     // cut mid-character
  EXPECT_EQ(ValidUtf8("\xc0\x80"), "\\xc0\\x80");            // overlong NUL
  EXPECT_EQ(ValidUtf8("\xed\xa0\x80"), "\\xed\\xa0\\x80");   // surrogate
  EXPECT_EQ(ValidUtf8("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(ValidUtf8("\xe6\x97"), "\\xe6\\x97");            // truncated
  EXPECT_EQ(ValidUtf8("a\x80" "b"), "a\\x80b");  // lone continuation
  for (const char* text : {"\xff", "\xc0\x80", "\xed\xa0\x80", "a\x80"}) {
    EXPECT_FALSE(IsValidUtf8(text));
    EXPECT_TRUE(IsValidUtf8(ValidUtf8(text)));
  }
}

TEST(ValidUtf8Test, TruncationKeepsWholeCharacters) {
  EXPECT_EQ(TruncateUtf8("шлюз", 3), "ш");
  EXPECT_EQ(TruncateUtf8("шлюз", 4), "шл");
  EXPECT_EQ(TruncateUtf8("abc", 10), "abc");
  EXPECT_EQ(TruncateUtf8("abc", 0), "");
}

TEST(DumpJsonTest, InvalidUtf8IsReplacedNotThrown) {
  nlohmann::json j = {{"comm", std::string("\xff")}};
  EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);
  EXPECT_EQ(DumpJson(j), "{\"comm\":\"\xef\xbf\xbd\"}");
  nlohmann::ordered_json o = {{"b", 1}, {"a", std::string("x\xfe")}};
  EXPECT_EQ(DumpJson(o), "{\"b\":1,\"a\":\"x\xef\xbf\xbd\"}");
}

TEST(JsonStringTest, MistypedOrMissingFieldsAreEmpty) {
  nlohmann::json j = {{"s", "text"}, {"n", 3}};
  EXPECT_EQ(JsonString(j, "s"), "text");
  EXPECT_EQ(JsonString(j, "n"), "");
  EXPECT_EQ(JsonString(j, "absent"), "");
  EXPECT_EQ(JsonString(nlohmann::json(5), "s"), "");
}

}  // namespace
}  // namespace gateway

namespace gateway {
namespace {

// nlohmann stores a non-negative literal as unsigned: the lower bound must
// hold for it too (0 was accepted as a pid and as a weight of 1..256).
TEST(JsonIntegerInTest, BoundsHoldForUnsignedAndSignedValues) {
  EXPECT_EQ(JsonIntegerIn(nlohmann::json::parse("0"), 1, 256), std::nullopt);
  EXPECT_EQ(JsonIntegerIn(nlohmann::json::parse("1"), 1, 256), 1);
  EXPECT_EQ(JsonIntegerIn(nlohmann::json::parse("256"), 1, 256), 256);
  EXPECT_EQ(JsonIntegerIn(nlohmann::json::parse("257"), 1, 256), std::nullopt);
  EXPECT_EQ(JsonIntegerIn(nlohmann::json::parse("-1"), 0, 16), std::nullopt);
  EXPECT_EQ(JsonIntegerIn(nlohmann::json::parse("-1"), -5, 16), -1);
  EXPECT_EQ(JsonIntegerIn(nlohmann::json::parse("4294967297"), 1, 1 << 30), std::nullopt);
  EXPECT_EQ(JsonPid(nlohmann::json::parse("0")), std::nullopt);
}

}  // namespace
}  // namespace gateway
