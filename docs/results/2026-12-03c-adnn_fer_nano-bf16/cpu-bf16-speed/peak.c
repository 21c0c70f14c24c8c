// Register-only throughput of the zmm f32 FMA and of VDPBF16PS on one core: 12 independent
// accumulators per loop. Build and run: gcc -O2 peak.c -o peak && ./peak (2026-12-03, Zen 4: peak.txt)
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
__attribute__((target("avx512f,avx512bf16"))) float run_bf(long n){
  __m512 a[12]; for(int i=0;i<12;i++) a[i]=_mm512_set1_ps(i);
  __m512bh x=(__m512bh)_mm512_set1_epi32(0x3f803f80), y=(__m512bh)_mm512_set1_epi32(0x3f803f81);
  for(long k=0;k<n;k++){
#pragma GCC unroll 12
    for(int i=0;i<12;i++) a[i]=_mm512_dpbf16_ps(a[i],x,y);
    __asm__ volatile("" : "+v"(x));
  }
  __m512 s=a[0]; for(int i=1;i<12;i++) s=_mm512_add_ps(s,a[i]); return _mm512_reduce_add_ps(s);}
__attribute__((target("avx512f"))) float run_fma(long n){
  __m512 a[12]; for(int i=0;i<12;i++) a[i]=_mm512_set1_ps(i);
  __m512 x=_mm512_set1_ps(1.0001f), y=_mm512_set1_ps(0.9999f);
  for(long k=0;k<n;k++){
#pragma GCC unroll 12
    for(int i=0;i<12;i++) a[i]=_mm512_fmadd_ps(a[i],x,y);
    __asm__ volatile("" : "+v"(x));
  }
  __m512 s=a[0]; for(int i=1;i<12;i++) s=_mm512_add_ps(s,a[i]); return _mm512_reduce_add_ps(s);}
int main(){ long n=50000000; for(int r=0;r<3;r++){
 double t=now(); float f=run_fma(n); double tf=now()-t;
 t=now(); float b=run_bf(n); double tb=now()-t;
 double ins=n*12.0;
 printf("fma zmm: %.2f Ginstr/s (%.1f GFLOP/s)  dpbf16 zmm: %.2f Ginstr/s (%.1f GFLOP/s) %g %g\n", ins/tf/1e9, ins*32/tf/1e9, ins/tb/1e9, ins*64/tb/1e9, f, b);}}
