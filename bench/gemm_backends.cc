// Compares sgemm backends on this machine at the shapes linattn uses (the choice of oneDNN in
// the README). Not part of the build: it needs Eigen and OpenBLAS, which linattn does not.
//   apt-get install libdnnl-dev libeigen3-dev libopenblas-dev
//   g++ -O3 -march=native -fopenmp -I/usr/include/eigen3 bench/gemm_backends.cc -o /tmp/gemm \
//       -ldnnl -lopenblas && OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /tmp/gemm
// (Debian's OpenBLAS misdetects some CPUs: compare with OPENBLAS_CORETYPE=SKYLAKEX too.)
#include <oneapi/dnnl/dnnl.h>
#include <Eigen/Dense>
#include <cblas.h>
#include <chrono>
#include <cstdio>
#include <vector>
#include <immintrin.h>
using clk=std::chrono::steady_clock;
template<class F> double best(F f,int reps){double b=1e30;for(int r=0;r<reps;r++){auto t=clk::now();f();double s=std::chrono::duration<double>(clk::now()-t).count();if(s<b)b=s;}return b;}
__attribute__((target("avx2,fma"))) double peak(){
  __m256 a[10];for(int i=0;i<10;i++)a[i]=_mm256_set1_ps(i*0.001f);
  __m256 m=_mm256_set1_ps(0.9999f),c=_mm256_set1_ps(0.0001f);
  long n=200000000/80;
  auto t=clk::now();
  for(long i=0;i<n;i++){for(int j=0;j<10;j++)a[j]=_mm256_fmadd_ps(a[j],m,c);}
  double s=std::chrono::duration<double>(clk::now()-t).count();
  float o=0;for(int j=0;j<10;j++){float x[8];_mm256_storeu_ps(x,a[j]);o+=x[0];}
  if(o==123)printf("x");
  return n*10*16/s/1e9;
}
int main(){
  printf("fma peak avx2: %.1f GFLOP/s\n",peak());
  struct S{int M,N,K;const char*n;} ss[]={{128,128,4096,"encode dk x dv, T=4096 (AtB)"},{1024,128,128,"1024 queries x M"},{512,512,512,"512^3"},{64,64,64,"64^3"},{128,128,128,"128^3"}};
  for(auto s:ss){
    std::vector<float>A(size_t(s.M)*s.K,0.5f),B(size_t(s.K)*s.N,0.25f),C(size_t(s.M)*s.N);
    double fl=2.0*s.M*s.N*s.K; int reps= fl<1e8?200:20;
    double td=best([&]{dnnl_sgemm('N','N',s.M,s.N,s.K,1.f,A.data(),s.K,B.data(),s.N,0.f,C.data(),s.N);},reps);
    Eigen::Map<Eigen::Matrix<float,-1,-1,Eigen::RowMajor>> a(A.data(),s.M,s.K),b(B.data(),s.K,s.N),c(C.data(),s.M,s.N);
    double te=best([&]{c.noalias()=a*b;},reps);
    double to=best([&]{cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,s.M,s.N,s.K,1.f,A.data(),s.K,B.data(),s.N,0.f,C.data(),s.N);},reps);
    printf("%-32s dnnl %6.1f  eigen %6.1f  openblas %6.1f GFLOP/s\n",s.n,fl/td/1e9,fl/te/1e9,fl/to/1e9);
  }
}
