set terminal svg size 800,500 font 'sans,12' background rgb 'white'
set output 'docs/bench/lookup_vs_T.svg'
set title 'One lookup: softmax attention over T tokens vs a linear-attention memory (d = 128)'
set logscale xy
set xlabel 'document length T (tokens)'
set ylabel 'time per query (us)'
set grid
set key left top
set arrow from 19.5685, graph 0 to 19.5685, graph 1 nohead dt 2
set label 'crossover T = 19' at 19.5685, graph 0.9 offset 1,0
plot 'docs/bench/lookup_vs_T.dat' using 1:2 with linespoints lw 2 title 'softmax (reads T x d)', '' using 1:3 with linespoints lw 2 title 'linear (reads d x d)'
unset arrow
unset label
unset logscale
set output 'docs/bench/pct_roof.svg'
set title 'Achieved share of each kernel roof on this machine'
set style data histograms
set style fill solid 0.8
set boxwidth 0.8
set yrange [0:110]
set ylabel 'percent'
set xtics rotate by -40 scale 0 font ',9'
set key top right
set xlabel ''
plot 'docs/bench/pct_roof.dat' using 3:xtic(2) title '% of roof (compute or bandwidth)', '' using 4 title '% of FMA peak'
