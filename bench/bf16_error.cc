// Measures the lookup error of bf16 storage against fp32 (README, "bf16 error").
// Run: ./build/bin/linattn_bf16_error
#include <linattn/linattn.h>
#include <cstdio>
#include <random>
#include <cmath>
using namespace linattn;
int main(){
  std::mt19937 g(7);
  for (int d : {24, 64, 128, 256}) {
    std::normal_distribution<float> n(0,1);
    int T=1000, m=256;
    std::vector<float> H(T*d), Q(m*d);
    for(auto&x:H)x=n(g); for(auto&x:Q)x=n(g);
    Memory f({.key_dim=d,.value_dim=d,.symmetric=true}), b({.key_dim=d,.value_dim=d,.symmetric=true,.dtype=DType::bf16});
    f.write(CView2::contiguous(H.data(),{T,d})); b.write(CView2::contiguous(H.data(),{T,d}));
    auto vb = view_of_bytes(serialize(b),"b");
    std::vector<float> rf(m*d), rb(m*d);
    f.lookup(CView2::contiguous(Q.data(),{m,d}), View2::contiguous(rf.data(),{m,d}));
    vb.lookup(CView2::contiguous(Q.data(),{m,d}), View2::contiguous(rb.data(),{m,d}));
    double mx=0, den=0, worst_row=0;
    for(int i=0;i<m;i++){ double num=0, dd=0; for(int j=0;j<d;j++){double e=rb[i*d+j]-rf[i*d+j]; num+=e*e; dd+=rf[i*d+j]*rf[i*d+j]; mx=std::max(mx,std::abs(e)); den=std::max(den,(double)std::abs(rf[i*d+j]));} worst_row=std::max(worst_row,std::sqrt(num/dd)); }
    printf("d=%d  max|err|/max|r| = %.2e   worst per-query relative L2 = %.2e\n", d, mx/den, worst_row);
  }
}
