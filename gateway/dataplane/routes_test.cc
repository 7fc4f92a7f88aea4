// Route flags and the JSON config format.
#include "gateway/dataplane/routes.h"

#include "absl/strings/str_cat.h"
#include "gateway/base/json_util.h"
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
      // Issue 13: duplicate keys, mistyped known keys, a route to itself.
      {"{\"routes\": [{\"listen\": \"127.0.0.1:1\",\n\"upstream\": \"127.0.0.1:2\",\n"
       "\"listen\": \"127.0.0.1:3\"}]}",
       "test.json: duplicate key 'listen' at line 3"},
      {"{\"routes\": [],\n\n \"routes\": []}", "duplicate key 'routes' at line 3"},
      {R"({"routes": [{"name": 7, "listen": "127.0.0.1:1", "upstream": "127.0.0.1:2"}]})",
       "routes[0]: \"name\" must be a non-empty string"},
      {R"({"routes": [{"name": "", "listen": "127.0.0.1:1", "upstream": "127.0.0.1:2"}]})",
       "routes[0]: \"name\" must be a non-empty string"},
      {R"({"routes": [{"listen": 80, "upstream": "127.0.0.1:2"}]})",
       "routes[0]: \"listen\" must be a non-empty string"},
      {R"({"routes": [{"listen": "127.0.0.1:1", "upstream": "127.0.0.1:2", "connect_timeout": 5}]})",
       "routes[0]: \"connect_timeout\" must be a non-empty string"},
      {R"({"routes": [{"listen": "127.0.0.1:7", "upstream": "127.0.0.1:7"}]})",
       "routes[0]: upstream 127.0.0.1:7 relays to its own listen address 127.0.0.1:7"},
  };
  for (const Case& c : cases) {
    absl::Status status = ParseRouteConfig(c.json, "test.json").status();
    EXPECT_NE(status.message().find(c.message), std::string::npos)
        << c.json << " -> " << status;
  }
}

TEST(RoutesTest, DuplicateKeysInNestedObjectsAreFoundAndSiblingsMayShareKeys) {
  // The same key in two sibling objects is fine; twice in one is not.
  EXPECT_TRUE(ParseRouteConfig(R"({"routes": [{"listen": "127.0.0.1:1", "upstream": "127.0.0.1:2"},
                                              {"listen": "127.0.0.1:3", "upstream": "127.0.0.1:2"}]})",
                               "test.json")
                  .ok());
  absl::Status status = ParseJsonObject("{\"a\": {\"b\": 1,\r\n\"b\": 2}}").status();
  EXPECT_EQ(status.message(), "duplicate key 'b' at line 2") << status;
  // An escaped key is compared as the string it stands for.
  status = ParseJsonObject(R"({"a": 1, "\u0061": 2})").status();
  EXPECT_EQ(status.message(), "duplicate key 'a' at line 1") << status;
  status = ParseJsonObject("{\"a\": 1,\n\n  nope}").status();
  EXPECT_EQ(status.message(), "malformed or truncated JSON at line 3") << status;
}

// The route-to-itself check: equal addresses, and a wildcard listen address
// that covers a loopback or wildcard upstream on the same port and family.
TEST(RoutesTest, RoutesThatRelayToThemselvesAreRefused) {
  for (const char* looping : {"127.0.0.1:9=127.0.0.1:9", "0.0.0.0:9=127.0.0.1:9",
                              "0.0.0.0:9=127.0.0.5:9", "127.0.0.1:9=0.0.0.0:9", "[::]:9=[::1]:9",
                              "[::1]:9=[::1]:9", "[::1]:9=[::]:9"}) {
    absl::Status status = ParseRouteFlag(looping).status();
    EXPECT_NE(status.message().find("relays to its own listen address"), std::string::npos)
        << looping << " -> " << status;
  }
  for (const char* fine : {"127.0.0.1:9=127.0.0.1:10", "127.0.0.1:9=127.0.0.2:9",
                           "[::]:9=127.0.0.1:9", "0.0.0.0:9=[::1]:9"}) {
    EXPECT_TRUE(ParseRouteFlag(fine).ok()) << fine;
  }
}


TEST(RoutesTest, UpstreamPoolsParseWithWeightsBackupsAndBalance) {
  absl::StatusOr<std::vector<Route>> routes = ParseRouteConfig(
      R"({"routes": [{"name": "api", "listen": "127.0.0.1:1",
                      "upstreams": [{"address": "127.0.0.1:2", "weight": 3}, "127.0.0.1:3",
                                    {"address": "[::1]:4", "backup": true}],
                      "balance": "hash", "connect_retries": 0}]})",
      "test.json");
  ASSERT_TRUE(routes.ok()) << routes.status();
  const Route& r = (*routes)[0];
  ASSERT_EQ(r.upstreams.size(), 3u);
  EXPECT_EQ(r.upstream.ToString(), "127.0.0.1:2");
  EXPECT_EQ(r.upstreams[0].weight, 3);
  EXPECT_EQ(r.upstreams[1].weight, 1);
  EXPECT_TRUE(r.upstreams[2].backup);
  EXPECT_EQ(r.balance, Balance::kHash);
  EXPECT_EQ(r.connect_retries, 0);
  // The shorthand is a pool of one.
  routes = ParseRouteFlag("127.0.0.1:1=127.0.0.1:2");
  ASSERT_TRUE(routes.ok());
  ASSERT_EQ((*routes)[0].upstreams.size(), 1u);
  EXPECT_EQ((*routes)[0].connect_retries, kDefaultConnectRetries);
  for (const char* bad : {
           R"({"routes": [{"listen": "127.0.0.1:1", "upstreams": []}]})",
           R"({"routes": [{"listen": "127.0.0.1:1", "upstreams": [{"address": "127.0.0.1:2", "backup": true}]}]})",
           R"({"routes": [{"listen": "127.0.0.1:1", "upstreams": [{"address": "127.0.0.1:2", "weight": "2"}]}]})",
           R"({"routes": [{"listen": "127.0.0.1:1", "upstreams": [{"address": "127.0.0.1:1"}]}]})",
           R"({"routes": [{"listen": "127.0.0.1:1", "upstreams": ["127.0.0.1:2"], "connect_retries": 17}]})",
           R"({"routes": [{"listen": "127.0.0.1:1", "upstreams": [{"addr": "127.0.0.1:2"}]}]})",
           R"({"routes": [{"listen": "127.0.0.1:1", "upstream": "127.0.0.1:2", "max_connections": -1}]})",
           R"({"routes": [{"listen": "127.0.0.1:1", "upstream": "127.0.0.1:2", "max_connections": "5"}]})",
           R"({"routes": [{"listen": "127.0.0.1:1", "upstream": "127.0.0.1:2", "idle_timeout": "soon"}]})",
           R"({"routes": [{"listen": "127.0.0.1:1", "upstream": "127.0.0.1:2", "idle_timeout": 5}]})",
       }) {
    EXPECT_FALSE(ParseRouteConfig(bad, "test.json").ok()) << bad;
  }
}

TEST(RoutesTest, FastIntervalDefaultsToAQuarterOfTheIntervalAndIsBounded) {
  auto check = [](const std::string& health_check) -> absl::StatusOr<HealthCheck> {
    absl::StatusOr<std::vector<Route>> routes = ParseRouteConfig(
        absl::StrCat(R"({"routes": [{"listen": "127.0.0.1:1", "upstream": "127.0.0.1:2",
                                     "health_check": )", health_check, "}]}"),
        "test.json");
    if (!routes.ok()) return routes.status();
    return (*routes)[0].health_check;
  };
  absl::StatusOr<HealthCheck> c = check(R"({"interval": "2s"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->fast_interval, absl::Milliseconds(500));
  c = check(R"({"interval": "20ms", "timeout": "10ms"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->fast_interval, absl::Milliseconds(10)) << "at least 10ms";
  c = check(R"({"interval": "1s", "fast_interval": "1s"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->fast_interval, absl::Seconds(1)) << "HAProxy's default: fastinter = inter";
  EXPECT_FALSE(check(R"({"interval": "1s", "fast_interval": "2s"})").ok());
  EXPECT_FALSE(check(R"({"fast_interval": "1ms"})").ok());
}

}  // namespace
}  // namespace gateway
