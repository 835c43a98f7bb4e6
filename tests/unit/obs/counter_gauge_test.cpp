// Counter and gauge semantics as a caller sees them.
#include <limits>

#include <gtest/gtest.h>

#include <respite/obs/metrics.hpp>

namespace respite::obs {
namespace {

TEST(counter, starts_at_zero_and_adds) {
    counter c;
    EXPECT_EQ(c.value(), 0U);
    c.inc();
    c.inc(41);
    EXPECT_EQ(c.value(), 42U);
}

TEST(gauge, starts_at_zero_sets_and_adds) {
    gauge g;
    EXPECT_EQ(g.value(), 0.0);
    g.set(2.5);
    EXPECT_EQ(g.value(), 2.5);
    g.add(-4.0);
    EXPECT_EQ(g.value(), -1.5);
    g.set(std::numeric_limits<double>::infinity());
    EXPECT_EQ(g.value(), std::numeric_limits<double>::infinity());
}

}  // namespace
}  // namespace respite::obs
