module github.com/jiaoliu/jiaoliu

go 1.26.0
