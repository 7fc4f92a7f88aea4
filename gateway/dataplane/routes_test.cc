// Route flags and the JSON config format.
#include "gateway/dataplane/routes.h"

#include "gtest/gtest.h"

namespace gateway {
namespace {

TEST(RoutesTest, ParsesIpv4AndIpv6Routes) {
  absl::StatusOr<std::vector<Route>> routes =
      ParseRouteFlag("127.0.0.1:8080=127.0.0.1:9000, [::1]:8443=[::1]:9443");
  ASSERT_TRUE(routes.ok()) << routes.status();
  ASSERT_EQ(routes->size(), 2u);
  EXPECT_EQ((*routes)[0].name, "127.0.0.1:8080");
  EXPECT_EQ((*routes)[0].upstream.ToString(), "127.0.0.1:9000");
  EXPECT_EQ((*routes)[1].listen.ToString(), "[::1]:8443");
  EXPECT_EQ((*routes)[1].connect_timeout, kDefaultConnectTimeout);
}

TEST(RoutesTest, EmptyFlagMeansNoRoutes) {
  EXPECT_TRUE(ParseRouteFlag("")->empty());
}

TEST(RoutesTest, BadRoutesAreErrors) {
  for (const char* bad : {"127.0.0.1:8080", "127.0.0.1:8080=nohost", "host:1=127.0.0.1:2",
                          "127.0.0.1:99999=127.0.0.1:1", "127.0.0.1:1=127.0.0.1:0",
                          "127.0.0.1:1=127.0.0.1:2,127.0.0.1:1=127.0.0.1:3", "::1:80=::1:81"}) {
    EXPECT_FALSE(ParseRouteFlag(bad).ok()) << bad;
  }
}

TEST(RoutesTest, ParsesConfigFile) {
  absl::StatusOr<std::vector<Route>> routes = ParseRouteConfig(
      R"({"routes": [{"name": "web", "listen": "127.0.0.1:8080", "upstream": "127.0.0.1:9000",
                      "connect_timeout": "250ms"}]})",
      "test.json");
  ASSERT_TRUE(routes.ok()) << routes.status();
  ASSERT_EQ(routes->size(), 1u);
  EXPECT_EQ((*routes)[0].name, "web");
  EXPECT_EQ((*routes)[0].connect_timeout, absl::Milliseconds(250));
}

TEST(RoutesTest, BadConfigFilesNameTheProblem) {
  struct Case {
    const char* json;
    const char* message;
  } cases[] = {
      {"{", "test.json: malformed or truncated JSON"},
      {R"({"routes": {}})", "needs a \"routes\" array"},
      {R"({"routes": [], "extra": 1})", "unknown key 'extra'"},
      {R"({"routes": [{"listen": "127.0.0.1:1"}]})", "routes[0] needs \"listen\" and \"upstream\""},
      {R"({"routes": [{"listen": "127.0.0.1:1", "upstream": "127.0.0.1:2", "tls": true}]})",
       "routes[0]: unknown key 'tls'"},
      {R"({"routes": [{"listen": "127.0.0.1:1", "upstream": "127.0.0.1:2", "connect_timeout": "x"}]})",
       "bad connect_timeout"},
      {R"({"routes": [{"name": "a", "listen": "127.0.0.1:1", "upstream": "127.0.0.1:2"},
                      {"name": "a", "listen": "127.0.0.1:3", "upstream": "127.0.0.1:2"}]})",
       "route name 'a' is used twice"},
  };
  for (const Case& c : cases) {
    absl::Status status = ParseRouteConfig(c.json, "test.json").status();
    EXPECT_NE(status.message().find(c.message), std::string::npos)
        << c.json << " -> " << status;
  }
}

}  // namespace
}  // namespace gateway
