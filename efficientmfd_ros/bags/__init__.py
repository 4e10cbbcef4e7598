"""Bags without a ROS install: rosbag2 files read and written with rosbags, their messages as
numpy arrays, bags made from a paired dataset or the synthetic scene."""
