// Views: the strided, non-owning arrays every operator takes (linattn/core/view.h).
#include <gtest/gtest.h>

#include <vector>

#include "linattn/core/view.h"

namespace linattn {
namespace {

// The overlap test behind every "shares memory" error: spans that only touch do not meet, one
// shared element does, and absent or empty views meet nothing.
TEST(View, SpansMeetOnlyWhereTheirRangesOverlap) {
  std::vector<float> buf(64);
  const CView2 rows = CView2(buf.data(), {4, 3}, {5, 1});  // elements 0 .. 17, with gaps
  EXPECT_FALSE(spans_meet(rows, CView1(buf.data() + 18, {10}, {1})));
  EXPECT_TRUE(spans_meet(rows, CView1(buf.data() + 17, {10}, {1})));
  EXPECT_TRUE(spans_meet(CView1(buf.data() + 17, {10}, {1}), rows));
  EXPECT_TRUE(spans_meet(rows, CView1(buf.data() + 4, {1}, {1})));  // a gap: conservative
  EXPECT_FALSE(spans_meet(rows, CView1(buf.data(), {0}, {1})));
  EXPECT_FALSE(spans_meet(rows, CView1{}));
}

}  // namespace
}  // namespace linattn
